"""Engine skeleton: dispatch, argument schemas, core commands, events."""

from __future__ import annotations

import pytest

from engine.qmp import Engine, QMPError
from engine.qmp.qdict import ghash_order, qdict_order
from engine.qmp.registry import command, lookup
from engine.qmp.schema import Alternate, Enum, Int, ListOf, Str, Struct, Union, members


def test_core_commands() -> None:
    eng = Engine()
    assert eng.execute("qmp_capabilities") == {}
    v = eng.execute("query-version")
    assert (v["qemu"]["major"], v["qemu"]["minor"]) == (7, 2)
    assert "blockgraph" in v["package"]
    names = [c["name"] for c in eng.execute("query-commands")]
    assert {"qmp_capabilities", "query-version", "query-commands"} <= set(names)
    with pytest.raises(QMPError) as e:
        eng.execute("nonexist")
    assert (e.value.error_class, e.value.desc) == (
        "CommandNotFound", "The command nonexist has not been found")
    with pytest.raises(QMPError, match="Parameter 'x' is unexpected"):
        eng.execute("query-version", {"x": 1})
    with pytest.raises(QMPError, match="must be an object"):
        eng.execute("query-commands", 5)  # type: ignore[arg-type]


def test_qdict_order_matches_qemu() -> None:
    # Observed in QEMU 7.2: of unexpected a, b, c, zzz, 'b' is reported first.
    order = ghash_order(qdict_order(["driver", "node-name", "a", "b", "c", "zzz"]))
    assert next(k for k in order if len(k) < 4 or k == "zzz") == "b"
    assert qdict_order(["major", "minor", "micro"]) == ["micro", "minor", "major"]


def test_schema_texts() -> None:
    ref = Alternate("BlockdevRef", string=Str())
    opts = Union("Opts", members({"driver": Enum("Drv", ["a", "b"]), "*node-name": Str()}),
                 variants={"a": members({"file": ref, "*size": Int(non_negative=True)})})
    ref.obj = opts
    top = Struct("cmd", members({"options": ListOf(opts)}))

    @command("x-test-schema", top)
    def handler(engine: Engine, args: dict) -> dict:
        return {}

    eng = Engine()
    cases = [
        ({}, "Parameter 'options' is missing"),
        ({"options": {}}, "Invalid parameter type for 'options', expected: array"),
        ({"options": [5]}, "Invalid parameter type for 'options[0]', expected: object"),
        ({"options": [{}]}, "Parameter 'options[0].driver' is missing"),
        ({"options": [{"driver": "zz"}]}, "Parameter 'driver' does not accept value 'zz'"),
        ({"options": [{"driver": "a"}]}, "Parameter 'options[0].file' is missing"),
        ({"options": [{"driver": "a", "file": 1}]},
         "Invalid parameter type for 'file', expected: BlockdevRef"),
        ({"options": [{"driver": "a", "file": {"driver": "a", "file": "x", "q": 1}}]},
         "Parameter 'options[0].file.q' is unexpected"),
        ({"options": [{"driver": "a", "file": "x", "size": -1}]},
         "Parameter 'options[0].size' expects a non-negative value"),
        ({"options": [{"driver": "a", "file": "x", "size": True}]},
         "Invalid parameter type for 'options[0].size', expected: integer"),
    ]
    for args, text in cases:
        with pytest.raises(QMPError) as e:
            eng.execute("x-test-schema", args)
        assert e.value.desc == text
    assert eng.execute("x-test-schema", {"options": [{"driver": "b", "any": 1}]}) == {}
    assert lookup("x-test-schema") is not None


def test_events_and_unsubscribe() -> None:
    eng = Engine()
    got: list[dict] = []
    unsubscribe = eng.add_listener(got.append)
    eng.emit("TEST", {"a": 1})
    unsubscribe()
    eng.emit("TEST", {"a": 2})
    assert [e["data"] for e in got] == [{"a": 1}]
    assert set(got[0]["timestamp"]) == {"seconds", "microseconds"}
    eng.close()
    with pytest.raises(QMPError):
        eng.execute("query-version")

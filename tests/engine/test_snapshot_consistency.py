"""The engine's own snapshot equals the one a client builds from its QMP replies;
the differential harness really detects differences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.graph.snapshot import GraphSnapshot
from engine.qmp import Engine
from tests.support.differential import EnginePeer, Mismatch, Step, run_scenario
from tests.support.qemu import create


def test_engine_snapshot_equals_snapshot_from_its_replies(tmp_path: Path) -> None:
    create(tmp_path / "base.qcow2", "1M")
    create(tmp_path / "top.qcow2", "1M", backing="base.qcow2")
    eng = Engine(rng_seed=3)
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top", "file": {
        "driver": "file", "filename": str(tmp_path / "top.qcow2")}})
    eng.execute("blockdev-add", {"driver": "null-co", "node-name": "n0"})
    eng.add_backend("cd0", "n0", removable=True)
    eng.execute("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "top",
                                                 "file": eng.graph.snapshot().child(
                                                     "top", "file"), "backing": None}]})
    own = eng.graph.snapshot()
    built = GraphSnapshot.from_qmp(eng.execute("x-debug-query-block-graph"),
                                   eng.execute("query-named-block-nodes", {"flat": True}),
                                   [])

    def shape(s: GraphSnapshot) -> tuple[Any, ...]:
        nodes = sorted((n.key, n.kind, n.name, n.driver, n.read_only, n.filename,
                        n.header_backing, n.implicit, n.virtual_size, n.cluster_size)
                       for n in s.nodes.values())
        return nodes, sorted((e.parent, e.child, e.role, e.perm, e.shared_perm, e.frozen)
                             for e in s.edges)

    assert shape(own) == shape(built)
    assert [k for k in own.nodes if not k.startswith("backend:")] == \
        [k for k in built.nodes if not k.startswith("backend:")]     # newest first
    assert own.nodes["top"].filename.startswith("json:")
    eng.close()


class _Liar(EnginePeer):
    """An engine that words one error differently."""

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        reply = super().execute(command, arguments)
        if "error" in reply and command == "blockdev-del":
            reply["error"]["desc"] += "!"
        return reply


def test_harness_reports_differences(tmp_path: Path) -> None:
    peers = [("engine", lambda d: EnginePeer()), ("liar", lambda d: _Liar())]
    run_scenario(tmp_path / "same", None, [Step("blockdev-add", {"driver": "null-co",
                                                                 "node-name": "n"})],
                 peers=peers)
    with pytest.raises(Mismatch, match="replies differ"):
        run_scenario(tmp_path / "diff", None, [Step("blockdev-del", {"node-name": "x"})],
                     peers=peers)
    with pytest.raises(Mismatch, match="expected error"):
        run_scenario(tmp_path / "exp", None, [
            Step("blockdev-add", {"driver": "null-co", "node-name": "n"}, expect="error")],
            peers=[("a", lambda d: EnginePeer()), ("b", lambda d: EnginePeer())])

"""One connection's QMP rules, without sockets (texts as qemu-storage-daemon 7.2)."""

from __future__ import annotations

from typing import Any

from engine.qmp import QMPError
from engine.server.jsonstream import JSONParseError
from engine.server.protocol import QMPSession


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.calls.append((command, arguments))
        if command == "boom":
            raise RuntimeError("bug")
        if command == "fail":
            raise QMPError("DeviceNotFound", "Device 'x' not found")
        if command not in ("qmp_capabilities", "query-x", "quit"):
            raise QMPError("CommandNotFound", f"The command {command} has not been found")
        return {"ok": command}


def session() -> tuple[QMPSession, FakeEngine]:
    eng = FakeEngine()
    return QMPSession(eng, lambda: ["qmp_capabilities", "query-x", "quit"]), eng


def err(desc: str, cls: str = "GenericError", **id_: Any) -> dict[str, Any]:
    return {"error": {"class": cls, "desc": desc}, **id_}


def test_checks_before_negotiation_and_engine_untouched() -> None:
    s, eng = session()
    assert s.handle(JSONParseError("JSON parse error, x")).message == err("JSON parse error, x")
    assert s.handle([1]).message == err("QMP input must be a JSON object")
    assert s.handle({"execute": "query-x", "id": 3}).message == err(
        "Expecting capabilities negotiation with 'qmp_capabilities'", "CommandNotFound", id=3)
    assert s.handle({"id": 5}).message == err("QMP input lacks member 'execute'", id=5)
    assert s.handle({"execute": "q", "exec-oob": "q"}).message == err(
        "QMP input member 'exec-oob' is unexpected")
    assert eng.calls == []


def test_member_checks_follow_qemu_member_order() -> None:
    s, _ = session()
    # both members are wrong; QEMU reports the one first in its member order
    assert s.handle({"arguments": [], "execute": 1}).message == err(
        "QMP input member 'execute' must be a string")
    for message in ({"zzz": 1, "arguments": 2}, {"arguments": 2, "zzz": 1}):
        assert s.handle(message).message == err("QMP input member 'zzz' is unexpected")
    assert s.handle({"execute": 1, "bogus": 1}).message == err(
        "QMP input member 'bogus' is unexpected")


def test_negotiation_then_commands_and_errors() -> None:
    s, eng = session()
    assert s.handle({"execute": "qmp_capabilities"}).message == {"return": {"ok":
                                                                          "qmp_capabilities"}}
    assert s.negotiated and not s.oob_enabled
    assert s.handle({"execute": "qmp_capabilities", "id": 1}).message == err(
        "Capabilities negotiation is already complete, command ignored", "CommandNotFound",
        id=1)
    assert s.handle({"execute": "query-x", "id": None}).message == {"return": {"ok": "query-x"},
                                                                    "id": None}
    assert s.handle({"execute": "fail"}).message == err("Device 'x' not found",
                                                         "DeviceNotFound")
    bug = s.handle({"execute": "boom", "id": "b"})
    assert bug.message["error"]["class"] == "GenericError" and bug.message["id"] == "b"
    reply = s.handle({"execute": "quit"})
    assert reply.quit and reply.message == {"return": {"ok": "quit"}}
    assert ("query-x", None) in eng.calls


def test_oob_after_negotiating_it() -> None:
    s, _ = session()
    s.handle({"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}})
    assert s.oob_enabled
    assert s.handle({"exec-oob": "query-x", "id": 1}).message == err(
        "The command query-x does not support OOB", id=1)
    assert s.handle({"exec-oob": "nope"}).message == err(
        "The command nope has not been found", "CommandNotFound")
    assert s.handle({"exec-oob": 3}).message == err(
        "QMP input member 'exec-oob' must be a string")
    assert s.handle({"execute": "query-x", "exec-oob": "query-x"}).message == err(
        "QMP input member 'execute' clashes with 'exec-oob'")

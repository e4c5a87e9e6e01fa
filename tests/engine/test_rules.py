"""The rules module on snapshots built from a real qemu-storage-daemon's replies.

For every candidate change the rules' verdict (allowed, or QEMU's exact text) must
equal what the daemon answers when the change is actually sent.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from tests.support.qemu import QemuStorageDaemon, create, qemu_io

pytestmark = pytest.mark.qemu


def snapshot_of(qsd: QemuStorageDaemon) -> GraphSnapshot:
    return GraphSnapshot.from_qmp(qsd.execute("x-debug-query-block-graph")["return"],
                                  qsd.execute("query-named-block-nodes",
                                              {"flat": True})["return"],
                                  qsd.execute("query-block-jobs")["return"])


def verdict(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except rules.RuleViolation as exc:
        return str(exc)
    return "ok"


def reopen_backing(qsd: QemuStorageDaemon, snap: GraphSnapshot, node: str,
                   backing: str | None) -> str:
    opts = {"driver": snap.nodes[node].driver, "node-name": node,
            "file": snap.child(node, "file"), "backing": backing}
    reply = qsd.execute("blockdev-reopen", {"options": [opts]})
    return reply["error"]["desc"] if "error" in reply else "ok"


@pytest.fixture
def chain(qsd: QemuStorageDaemon, tmp_path: Path) -> QemuStorageDaemon:
    create(tmp_path / "base.qcow2", "4M")
    qemu_io(tmp_path / "base.qcow2", "write -P 0x11 0 4M")
    create(tmp_path / "mid.qcow2", "4M", backing="base.qcow2")
    qemu_io(tmp_path / "mid.qcow2", "write -P 0x22 0 1M")
    create(tmp_path / "top.qcow2", "4M", backing="mid.qcow2")
    create(tmp_path / "other.qcow2", "4M")
    for name in ("top", "other"):
        assert qsd.execute("blockdev-add", {"driver": "qcow2", "node-name": name, "file": {
            "driver": "file", "node-name": f"{name}-file",
            "filename": str(tmp_path / f"{name}.qcow2")}}) == {"return": {}}
    assert qsd.execute("blockdev-add", {"driver": "null-co", "node-name": "n0"}) == {
        "return": {}}
    return qsd


def test_set_backing_verdicts_match_qemu(chain: QemuStorageDaemon) -> None:
    qsd = chain
    snap = snapshot_of(qsd)
    mid = snap.backing("top")
    base = snap.backing(mid)  # type: ignore[arg-type]
    assert mid and base and snap.nodes[mid].auto_named
    assert "would create a cycle" in verdict(rules.check_set_backing, snap, mid, "top")
    candidates = [n for n in snap.nodes if snap.nodes[n].driver == "qcow2"] + \
        ["n0", "nonexist", None]
    outcomes = []
    for node in ("other", "top"):
        for target in candidates:
            snap = snapshot_of(qsd)    # verdicts always on the daemon's current graph
            expected = verdict(rules.check_set_backing, snap, node, target)
            actual = reopen_backing(qsd, snap, node, target)
            assert expected == actual, (node, target)
            outcomes.append(actual)
    assert "ok" in outcomes and any("cycle" in o for o in outcomes)
    assert any(o.startswith("Cannot find") for o in outcomes)


def test_frozen_and_implicit_from_a_running_stream(chain: QemuStorageDaemon) -> None:
    qsd = chain
    snap = snapshot_of(qsd)
    mid = snap.backing("top")
    assert mid is not None
    # stream into the middle node: an implicit filter appears between top and mid
    assert qsd.execute("block-stream", {"job-id": "s0", "device": mid, "speed": 1}) == {
        "return": {}}
    running = snapshot_of(qsd)
    flt = running.backing("top")
    assert flt is not None and running.nodes[flt].implicit
    assert running.nodes[flt].driver == "copy-on-read"
    assert running.nodes["job:s0"].kind == "block-job"
    for target in ("other", None, mid, flt):
        expected = verdict(rules.check_set_backing, running, "top", target)
        assert expected == reopen_backing(qsd, running, "top", target), target


def test_frozen_link_verdict_matches_qemu(chain: QemuStorageDaemon) -> None:
    qsd = chain
    snap = snapshot_of(qsd)
    mid = snap.backing("top")
    assert qsd.execute("block-stream", {"job-id": "s1", "device": "top", "speed": 1,
                                        "base-node": snap.backing(mid)}) == {"return": {}}
    running = snapshot_of(qsd)
    edge = running.edge("top", "backing")
    assert edge is not None and edge.frozen
    for target in ("other", None):
        expected = verdict(rules.check_set_backing, running, "top", target)
        assert expected == reopen_backing(qsd, running, "top", target)
        assert expected.startswith("Cannot change frozen 'backing' link from 'top'")


def test_delete_verdicts_match_qemu(chain: QemuStorageDaemon) -> None:
    qsd = chain
    snap = snapshot_of(qsd)
    mid = snap.backing("top")
    for node in (mid, "top-file", "nonexist"):
        expected = verdict(rules.check_delete, snap, node)
        reply = qsd.execute("blockdev-del", {"node-name": node})
        actual = reply["error"]["desc"] if "error" in reply else "ok"
        if expected != actual:
            # monitor ownership is invisible in query results: the rules say so
            assert actual.endswith("is not owned by the monitor"), (node, actual)


def test_rules_module_has_no_qt() -> None:
    src = Path(rules.__file__).read_text()
    imported = {n.names[0].name if isinstance(n, ast.Import) else n.module
                for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import | ast.ImportFrom)}
    assert not any(m and m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "qasync")
                   for m in imported)


def test_reopen_unsupported_driver_matches_qemu(chain: QemuStorageDaemon) -> None:
    qsd = chain
    snap = snapshot_of(qsd)
    assert qsd.execute("block-stream", {"job-id": "s2", "device": "top", "speed": 1,
                                        "filter-node-name": "sflt"}) == {"return": {}}
    running = snapshot_of(qsd)
    assert running.nodes["sflt"].driver == "copy-on-read"
    assert not running.nodes["sflt"].implicit          # named filters are not implicit
    expected = verdict(rules.check_reopen_driver, running, "sflt")
    reply = qsd.execute("blockdev-reopen", {"options": [
        {"driver": "copy-on-read", "node-name": "sflt", "file": "top"}]})
    assert expected == reply["error"]["desc"] == (
        "Block format 'copy-on-read' used by node 'sflt' does not support reopening files")
    assert verdict(rules.check_reopen_driver, snap, "top") == "ok"

"""GraphSnapshot: construction, lookups, immutability, diff, and from_qmp on real replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.graph.snapshot import BLOCK_BACKEND, BLOCK_NODE, EdgeInfo, GraphSnapshot, NodeInfo
from tests.support.qemu import QemuStorageDaemon, create


def _snap(*edges: tuple[str, str, str], extra: tuple[str, ...] = ()) -> GraphSnapshot:
    keys: list[str] = []
    for p, c, _ in edges:
        for k in (p, c):
            if k not in keys:
                keys.append(k)
    keys += [k for k in extra if k not in keys]
    nodes = [NodeInfo(key=k, kind=BLOCK_NODE, name=k, driver="qcow2") for k in keys]
    return GraphSnapshot(nodes, [EdgeInfo(p, c, r) for p, c, r in edges])


def test_lookups_and_nx() -> None:
    s = _snap(("top", "top-file", "file"), ("top", "base", "backing"),
              ("base", "base-file", "file"))
    assert s.backing("top") == "base"
    assert s.child("top", "file") == "top-file"
    assert s.child("base", "backing") is None
    assert [e.parent for e in s.parents("base")] == ["top"]
    assert {e.role for e in s.children("top")} == {"file", "backing"}
    g = s.nx()
    assert g is s.nx()
    assert g.has_edge("top", "base", key="backing")
    assert not s.nodes["top"].auto_named


def test_immutable() -> None:
    s = _snap(("a", "b", "backing"))
    with pytest.raises(AttributeError):
        s.nodes = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.nodes["x"] = s.nodes["a"]  # type: ignore[index]
    with pytest.raises(ValueError):
        GraphSnapshot([NodeInfo("a", BLOCK_NODE, "a")], [EdgeInfo("a", "zz", "file")])


def test_diff() -> None:
    old = _snap(("top", "mid", "backing"), ("mid", "base", "backing"))
    new_nodes = [NodeInfo(k, BLOCK_NODE, k, driver="qcow2") for k in ("top", "mid", "base")]
    new_nodes[0] = NodeInfo("top", BLOCK_NODE, "top", driver="qcow2", read_only=True)
    new_nodes.append(NodeInfo("#block123", BLOCK_NODE, "#block123", driver="file"))
    new = GraphSnapshot(new_nodes, [EdgeInfo("top", "base", "backing"),
                                    EdgeInfo("mid", "base", "backing")])
    d = old.diff(new)
    assert d.added_nodes == ("#block123",)
    assert d.removed_nodes == ()
    assert d.changed_nodes == ("top",)
    assert d.added_edges == (EdgeInfo("top", "base", "backing"),)
    assert d.removed_edges == (EdgeInfo("top", "mid", "backing"),)
    assert new.nodes["#block123"].auto_named
    assert old.diff(old).empty and not old.diff(old)
    assert old == _snap(("top", "mid", "backing"), ("mid", "base", "backing"))


def test_from_qmp_on_real_qsd_replies(qsd: QemuStorageDaemon, tmp_path: Path) -> None:
    create(tmp_path / "base.qcow2", "1M")
    create(tmp_path / "top.qcow2", "1M", backing="base.qcow2")
    r = qsd.execute("blockdev-add", {"driver": "qcow2", "node-name": "top", "file": {
        "driver": "file", "filename": str(tmp_path / "top.qcow2")}})
    assert r == {"return": {}}
    assert qsd.execute("blockdev-add", {"driver": "null-co", "node-name": "n0"}) == {"return": {}}
    snap = GraphSnapshot.from_qmp(
        qsd.execute("x-debug-query-block-graph")["return"],
        qsd.execute("query-named-block-nodes", {"flat": True})["return"],
        qsd.execute("query-block-jobs")["return"])
    assert len(snap.nodes) == 5 and len(snap.edges) == 3
    assert next(iter(snap.nodes)) == "n0"                    # newest first
    top = snap.nodes["top"]
    assert (top.driver, top.read_only, top.header_backing) == ("qcow2", False, "base.qcow2")
    assert top.header_backing_format == "qcow2" and top.cluster_size == 65536
    base = snap.backing("top")
    assert base is not None and snap.nodes[base].auto_named and snap.nodes[base].read_only
    assert snap.nodes[base].filename == str(tmp_path / "base.qcow2")
    top_file = snap.edge("top", "file")
    assert top_file is not None
    assert top_file.perm == ("resize", "write", "consistent-read")
    assert top_file.shared_perm == ("write-unchanged", "consistent-read")
    assert not any(e.frozen for e in snap.edges)
    assert all(n.kind == BLOCK_NODE for n in snap.nodes.values())
    assert BLOCK_BACKEND == "block-backend"

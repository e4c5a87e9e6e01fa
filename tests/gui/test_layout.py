"""Layered layout: rows by chain, protocol nodes beside, shared bases, stable positions."""

from __future__ import annotations

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo
from gui.views.layout import DEFAULT_GEOMETRY as G
from gui.views.layout import full_layout, layout
from tests.support.graphs import vm_farm


def node(key: str, kind: str = "block-node", driver: str = "qcow2") -> NodeInfo:
    return NodeInfo(key=key, kind=kind, name=key, driver=driver)


def chains() -> GraphSnapshot:
    """vm1: top1 -> mid1 -> base; vm2: top2 -> base; every image with a file node."""
    names = ["top1", "mid1", "top2", "base"]
    nodes = [node(n) for n in names] + [node(f"{n}-f", driver="file") for n in names]
    nodes += [node("backend:vm1", "block-backend"), node("backend:vm2", "block-backend")]
    edges = [EdgeInfo(n, f"{n}-f", "file") for n in names]
    edges += [EdgeInfo("top1", "mid1", "backing"), EdgeInfo("mid1", "base", "backing"),
              EdgeInfo("top2", "base", "backing"),
              EdgeInfo("backend:vm1", "top1", "root"), EdgeInfo("backend:vm2", "top2", "root")]
    return GraphSnapshot(nodes, edges)


def overlaps(pos: dict[str, tuple[float, float]], snap: GraphSnapshot) -> list[tuple[str, str]]:
    from gui.views.layout import analyse

    beside = analyse(snap).beside_of
    rects = {k: (x, y, *G.size(snap.nodes[k].kind, k in beside)) for k, (x, y) in pos.items()}
    out = []
    keys = sorted(rects)
    for i, a in enumerate(keys):
        ax, ay, aw, ah = rects[a]
        for b in keys[i + 1:]:
            bx, by, bw, bh = rects[b]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                out.append((a, b))
    return out


def test_overlays_above_backing_and_files_beside() -> None:
    snap = chains()
    pos = full_layout(snap)
    assert set(pos) == set(snap.nodes)
    # each overlay is one row above its backing, backends one row above their root:
    # the child's card starts one gap below the parent's row (rows are as tall as
    # their tallest card, so a row of drives is shorter than a row of images)
    for parent, child in [("top1", "mid1"), ("mid1", "base"), ("top2", "base"),
                          ("backend:vm1", "top1"), ("backend:vm2", "top2")]:
        row_h = max(G.size(snap.nodes[k].kind, False)[1] for k, p in pos.items()
                    if p[1] == pos[parent][1])
        assert pos[child][1] - (pos[parent][1] + row_h) == G.row_gap, (parent, child)
    # protocol nodes sit on their format node's row, to its right
    for n in ["top1", "mid1", "top2", "base"]:
        fx, fy = pos[f"{n}-f"]
        assert fx == pos[n][0] + G.node_w + G.beside_gap
        assert pos[n][1] <= fy < pos[n][1] + G.node_h
    # the shared base is drawn once, between its two overlays
    xs = sorted([pos["mid1"][0], pos["top2"][0]])
    assert xs[0] <= pos["base"][0] <= xs[1]
    assert overlaps(pos, snap) == []


def test_positions_are_stable_and_only_new_nodes_are_placed() -> None:
    snap = chains()
    before = full_layout(snap)
    # a snapshot of top2 (new overlay snap2 becomes the backend's root) + an unrelated change
    nodes = [n for n in snap.nodes.values()] + [node("snap2"), node("snap2-f", driver="file")]
    edges = [e for e in snap.edges if e.parent != "backend:vm2"]
    edges += [EdgeInfo("backend:vm2", "snap2", "root"), EdgeInfo("snap2", "top2", "backing"),
              EdgeInfo("snap2", "snap2-f", "file")]
    after_snap = GraphSnapshot(nodes, edges)
    after = layout(after_snap, before)
    # the overlay goes between the drive and its old root; only the drive (its
    # ancestor) moves, one row up; every other node stays where it was
    for k, p in before.items():
        if k != "backend:vm2":
            assert after[k] == p, k
    bx, by = before["backend:vm2"]
    assert after["backend:vm2"] == (bx, by - G.row_h)
    assert after["snap2"] == (before["top2"][0], before["top2"][1] - G.row_h)
    assert after["snap2-f"][1] >= after["snap2"][1]
    assert overlaps(after, after_snap) == []


def test_a_new_overlay_without_users_moves_nothing() -> None:
    snap = chains()
    before = full_layout(snap)
    nodes = [*snap.nodes.values(), node("snap1")]
    edges = [*snap.edges, EdgeInfo("snap1", "mid1", "backing")]
    grown = GraphSnapshot(nodes, edges)
    after = layout(grown, before)
    for k, p in before.items():
        assert after[k] == p, k
    assert after["snap1"][1] < after["mid1"][1]
    assert overlaps(after, grown) == []


def test_new_island_is_laid_out_in_free_space_and_nothing_moves() -> None:
    snap = chains()
    before = full_layout(snap)
    nodes = [*snap.nodes.values(), node("x-top"), node("x-base"), node("x-top-f", driver="file")]
    edges = [*snap.edges, EdgeInfo("x-top", "x-base", "backing"),
             EdgeInfo("x-top", "x-top-f", "file")]
    grown = GraphSnapshot(nodes, edges)
    after = layout(grown, before)
    assert all(after[k] == p for k, p in before.items())
    # laid out as a chain of its own: the overlay above its backing, file beside
    assert after["x-base"][1] > after["x-top"][1]
    assert after["x-base"][0] == after["x-top"][0]
    assert after["x-top-f"][1] > after["x-top"][1]
    assert overlaps(after, grown) == []


def test_cycles_are_drawn_not_fatal() -> None:
    snap = GraphSnapshot([node("a"), node("b")], [EdgeInfo("a", "b", "backing"),
                                                    EdgeInfo("b", "a", "backing")])
    pos = full_layout(snap)
    assert set(pos) == {"a", "b"} and pos["a"] != pos["b"]


def test_large_graph_has_no_overlaps() -> None:
    snap = vm_farm(400)
    pos = full_layout(snap)
    assert len(pos) == 400
    assert overlaps(pos, snap) == []

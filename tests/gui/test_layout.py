"""Layout: rows by chain, protocol nodes beside, shared bases, stable positions, parts
packed and framed by VM, links in free space and apart, the router, packing."""

from __future__ import annotations

import itertools

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo
from gui.views.layout import DEFAULT_GEOMETRY as G
from gui.views.layout import Drawing, RectIndex, Router, draw, full_layout, layout, quality, rounded
from tests.support.graphs import host_of_chains, shared_base, vm_farm


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


# -- the whole picture: parts, frames, packing, links ------------------------------------

def check_drawing(snap: GraphSnapshot, aspect: float = 1.6) -> Drawing:
    """Lay ``snap`` out and check what every drawing must be: every node and link
    drawn, no two cards overlapping, no link through a card it does not connect,
    no two links crossing, each link from its parent's card to its child's."""
    d = draw(snap, aspect=aspect)
    assert set(d.rects) == set(snap.nodes)
    assert set(d.paths) == {(e.parent, e.role, e.child) for e in snap.edges}
    assert quality.overlaps(d.rects) == []
    assert quality.links_through_cards(d.rects, d.paths) == []
    assert quality.crossings(d.paths, d.rects) == 0
    for (parent, _role, child), pts in d.paths.items():
        px, py, pw, ph = d.rects[parent]
        cx, cy, cw, ch = d.rects[child]
        assert px <= pts[0][0] <= px + pw and py <= pts[0][1] <= py + ph
        assert cx <= pts[-1][0] <= cx + cw and cy <= pts[-1][1] <= cy + ch
    return d


def test_a_host_of_many_chains_is_packed_to_the_viewports_shape() -> None:
    snap = host_of_chains(200)
    for aspect in (0.6, 1.6, 2.5):
        d = check_drawing(snap, aspect)
        shape = quality.aspect(d.rects)
        assert aspect / 1.5 <= shape <= aspect * 1.5, (aspect, shape)
        assert 1 / 3 <= shape <= 3
    # each VM in a frame of its own, labelled with its name, around its cards
    d = draw(snap)
    assert len(d.frames) == 200
    frame = next(f for f in d.frames if f.label == "vm7")
    assert "backend:vm7" in frame.keys and "vm7-top" in frame.keys
    for k in frame.keys:
        x, y, w, h = d.rects[k]
        fx, fy, fw, fh = frame.rect
        assert fx < x and x + w < fx + fw and fy < y and y + h < fy + fh
    assert quality.overlaps({f.label: f.rect for f in d.frames}) == []


def test_the_biggest_parts_come_first() -> None:
    d = draw(host_of_chains(40))
    frames = sorted(d.frames, key=lambda f: (f.rect[1], f.rect[0]))
    # the tallest frame sits in the top row
    tallest = max(f.rect[3] for f in d.frames)
    assert frames[0].rect[3] == tallest


def test_a_shared_base_is_fed_by_links_that_stay_apart() -> None:
    snap = shared_base(12)
    d = check_drawing(snap)
    into_base = [pts for (_p, role, child), pts in d.paths.items()
                 if child == "base" and role == "backing"]
    ends = sorted(pts[-1][0] for pts in into_base)
    assert all(b - a >= 4 for a, b in itertools.pairwise(ends)), ends
    # no two links share a stretch of line (parallel links run on their own tracks)
    segments = [(a, b) for pts in d.paths.values() for a, b in itertools.pairwise(pts)]
    horizontal = [(min(a[0], b[0]), max(a[0], b[0]), a[1]) for a, b in segments
                  if abs(a[1] - b[1]) < 0.01 and abs(a[0] - b[0]) > 0.01]
    for i, (x0, x1, y) in enumerate(horizontal):
        for u0, u1, v in horizontal[i + 1:]:
            assert not (abs(y - v) < 0.01 and x0 < u1 - 0.01 and u0 < x1 - 0.01)
    # the base is centred under its overlays
    xs = [d.rects[f"vm{i}-top"][0] for i in range(12)]
    base_mid = d.rects["base"][0] + d.rects["base"][2] / 2
    assert min(xs) < base_mid < max(xs) + G.node_w


def test_long_links_pass_rows_in_lanes_of_their_own() -> None:
    """A job holding the top and the base of a chain: its link to the base passes the
    middle rows beside the cards, not through them."""
    names = ["top", "mid1", "mid2", "base"]
    nodes = [node(n) for n in names] + [node("job:j", "block-job", "commit")]
    edges = [EdgeInfo(a, b, "backing") for a, b in itertools.pairwise(names)]
    edges += [EdgeInfo("job:j", "top", "main node"), EdgeInfo("job:j", "base", "base")]
    check_drawing(GraphSnapshot(nodes, edges))


def test_a_dense_graph_has_fewer_crossings_after_reduction() -> None:
    """Two rows linked crosswise: the barycentre sweeps untangle them."""
    tops = [node(f"t{i}") for i in range(6)]
    bottoms = [node(f"b{i}") for i in range(6)]
    edges = [EdgeInfo(f"t{i}", f"b{5 - i}", "backing") for i in range(6)]
    edges += [EdgeInfo(f"t{i}", f"b{(i + 3) % 6}", "file") for i in range(6)]
    snap = GraphSnapshot(tops + bottoms, edges)
    d = draw(snap)
    assert quality.overlaps(d.rects) == []
    assert quality.links_through_cards(d.rects, d.paths) == []
    # dot draws this with several crossings; the sweeps must find an order with few
    assert quality.crossings(d.paths, d.rects) <= 6


def test_five_thousand_nodes_are_drawn_cleanly() -> None:
    snap = vm_farm(2000)
    d = draw(snap)
    assert quality.overlaps(d.rects) == []
    assert quality.links_through_cards(d.rects, d.paths) == []
    assert quality.crossings(d.paths, d.rects) == 0
    assert 1 / 3 <= quality.aspect(d.rects) <= 3


def test_the_router_takes_a_link_around_a_card_in_its_way() -> None:
    rects = {"a": (0.0, 0.0, 220.0, 96.0), "b": (0.0, 400.0, 220.0, 96.0),
             "wall": (-100.0, 200.0, 420.0, 96.0)}
    router = Router(RectIndex(rects))
    pts = router.route("a", "b")
    assert pts[0] == (110.0, 96.0) and pts[-1] == (110.0, 400.0)
    assert quality.links_through_cards(rects, {("a", "backing", "b"): pts}) == []
    assert quality.links_through_cards(rects, {("a", "backing", "b"): rounded(pts)}) == []
    # nothing in the way: the plain line
    assert Router(RectIndex({k: rects[k] for k in "ab"})).route("a", "b") == [
        (110.0, 96.0), (110.0, 400.0)]
    # a child above its parent: around the side
    rects2 = {"a": (0.0, 400.0, 220.0, 96.0), "b": (0.0, 0.0, 220.0, 96.0)}
    pts = Router(RectIndex(rects2)).route("a", "b")
    assert quality.links_through_cards(rects2, {("a", "r", "b"): pts}) == []
    assert pts[0] == (110.0, 496.0) and pts[-1] == (110.0, 0.0)


def test_the_router_finds_a_way_through_a_maze() -> None:
    rects = {"a": (0.0, 0.0, 100.0, 50.0), "b": (0.0, 600.0, 100.0, 50.0)}
    # a row of cards with one gap far to the right, and a second row with a gap left
    for i in range(8):
        if i != 6:
            rects[f"r{i}"] = (-400.0 + i * 150, 200.0, 140.0, 50.0)
        if i != 1:
            rects[f"s{i}"] = (-400.0 + i * 150, 400.0, 140.0, 50.0)
    pts = Router(RectIndex(rects)).route("a", "b")
    assert quality.links_through_cards(rects, {("a", "r", "b"): pts}) == []
    assert pts[0] == (50.0, 50.0) and pts[-1] == (50.0, 600.0)
    assert all(a[0] == b[0] or a[1] == b[1] for a, b in itertools.pairwise(pts))


def test_rounded_corners_stay_near_the_corner_and_keep_the_ends() -> None:
    pts = [(0.0, 0.0), (0.0, 100.0), (200.0, 100.0), (200.0, 300.0)]
    line = rounded(pts)
    assert line[0] == pts[0] and line[-1] == pts[-1]
    assert len(line) == 2 + 2 * 4
    for x, y in line:
        assert -0.01 <= x <= 200.01 and -0.01 <= y <= 300.01


def test_packing_keeps_parts_apart() -> None:
    from gui.views.layout.packing import pack

    sizes = [(300.0, 200.0), (500.0, 120.0), (100.0, 400.0)] * 20
    places, width, height = pack(sizes, 1.0, 10.0)
    rects = {str(i): (x, y, w, h) for i, ((x, y), (w, h)) in enumerate(zip(places, sizes,
                                                                             strict=True))}
    assert quality.overlaps(rects) == []
    assert 1 / 1.5 <= width / height <= 1.5

"""The scene is a projection of snapshots, updated item by item from diffs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from engine.graph.snapshot import EdgeInfo, GraphSnapshot
from gui.views.layout import quality
from gui.views.lens import FOLDED, Lens, fold_key, foldable_chains
from gui.views.node_card import NodeCard
from gui.views.palette import DARK
from gui.views.scene import GraphScene
from tests.gui.test_layout import chains, node
from tests.support.graphs import deep_chain, vm_farm

pytestmark = pytest.mark.gui


def test_first_snapshot_builds_one_item_per_node_and_edge(qapp: QApplication) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    assert set(scene.nodes) == set(snap.nodes)
    assert len(scene.edges) == len(snap.edges)
    assert all(isinstance(card, NodeCard) for card in scene.nodes.values())
    # cards are drawn by one layer, not as graphics items of their own
    assert set(scene.items()) == {scene.edge_layer, scene.card_layer, scene.frame_layer,
                                  scene.edge_layer.labels}
    assert len(scene.edge_layer.edges) == len(snap.edges)
    assert set(scene.edge_layer.edges) == set(scene.edges.values())


def test_diff_updates_items_in_place(qapp: QApplication) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    kept = {k: scene.nodes[k] for k in snap.nodes}
    pos = scene.positions()
    # re-point top2's backing from base to mid1, make base read-write, drop vm1's backend
    nodes = [dataclasses.replace(n, read_only=True) if n.key == "base" else n
             for n in snap.nodes.values() if n.key != "backend:vm1"]
    edges = [e for e in snap.edges
             if not (e.parent == "top2" and e.role == "backing") and e.parent != "backend:vm1"]
    edges.append(EdgeInfo("top2", "mid1", "backing"))
    newer = GraphSnapshot(nodes, edges)
    scene.show_snapshot(newer)
    assert "backend:vm1" not in scene.nodes
    for k in newer.nodes:  # the same item objects, in the same places
        assert scene.nodes[k] is kept[k]
        assert scene.positions()[k] == pos[k]
    assert scene.nodes["base"].info.read_only
    assert ("top2", "backing", "mid1") in scene.edges
    assert ("top2", "backing", "base") not in scene.edges
    edge = scene.edges[("top2", "backing", "mid1")]
    assert edge.src is scene.nodes["top2"] and edge.dst is scene.nodes["mid1"]
    assert len(scene.edges) == len(newer.edges)
    assert set(scene.edge_layer.edges) == set(scene.edges.values())


def test_nodes_in_a_job_get_a_badge(qapp: QApplication) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    job = dataclasses.replace(node("job:s0", "block-job", "stream"), name="s0",
                              info={"offset": 50, "len": 100})
    newer = GraphSnapshot([*snap.nodes.values(), job],
                          [*snap.edges, EdgeInfo("job:s0", "top1", "main node")])
    scene.show_snapshot(newer)
    assert scene.nodes["top1"].job_badge == "s0 50%"
    scene.show_snapshot(snap)
    assert scene.nodes["top1"].job_badge == ""


def test_scheme_and_permissions_toggle(qapp: QApplication) -> None:
    scene = GraphScene()
    scene.show_snapshot(chains())
    scene.set_scheme(DARK)
    assert all(i.scheme is DARK for i in scene.nodes.values())
    scene.set_show_permissions(True)
    assert all(e.show_perms for e in scene.edges.values())


def test_inserting_an_overlay_under_a_drive_lifts_the_drive(qapp: QApplication) -> None:
    from gui.views.layout import DEFAULT_GEOMETRY as G

    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    before = scene.positions()
    nodes = [*snap.nodes.values(), node("snap2")]
    edges = [e for e in snap.edges if e.parent != "backend:vm2"]
    edges += [EdgeInfo("backend:vm2", "snap2", "root"), EdgeInfo("snap2", "top2", "backing")]
    scene.show_snapshot(GraphSnapshot(nodes, edges))
    after = scene.positions()
    assert after["backend:vm2"][1] == before["backend:vm2"][1] - G.row_h
    assert all(after[k] == before[k] for k in before if k != "backend:vm2")
    root = scene.edges[("backend:vm2", "root", "snap2")]
    assert root.child_end() == scene.nodes["snap2"].top_port()
    assert root.endpoints()[0] == scene.nodes["backend:vm2"].bottom_port()


# -- lens: fold, focus, filter -------------------------------------------------------------

def test_a_chain_folds_into_one_summary_card_and_unfolds(qapp: QApplication) -> None:
    snap = deep_chain(12)
    lens = Lens(folded=frozenset({"layer11"}))
    shown = lens.apply(snap)
    key = fold_key("layer11")
    assert set(shown.nodes) == {"backend:vm0", key}
    summary = shown.nodes[key]
    assert summary.kind == FOLDED and summary.name == "vm0: 12 layers"
    assert summary.actual_size == sum(n.actual_size or 0 for n in snap.nodes.values())
    assert [(e.parent, e.role, e.child) for e in shown.edges] == [("backend:vm0", "root", key)]
    assert lens.shown_key(snap, "layer3") == key
    scene = GraphScene()
    scene.show_snapshot(snap)
    assert len(scene.nodes) == 25
    scene.set_lens(lens)
    scene.animation.finish()
    assert set(scene.nodes) == {"backend:vm0", key}
    assert scene.snapshot is snap           # the editor still plans on the real graph
    card = scene.nodes[key]
    assert "12 layers" in card.tooltip() and "allocated" in card._layout_text()[0]
    scene.set_lens(Lens())
    scene.animation.finish()
    assert len(scene.nodes) == 25


def test_a_shared_base_stays_out_of_every_fold() -> None:
    snap = vm_farm(60)
    tops = foldable_chains(snap)
    assert tops and all(not t.startswith("base") for t in tops)
    shown = Lens(folded=frozenset(tops)).apply(snap)
    assert "base0" in shown.nodes
    for t in tops:
        assert shown.backing(fold_key(t)) == "base0" or shown.backing(fold_key(t)) is None


def test_focus_shows_what_one_vm_uses() -> None:
    snap = chains()
    shown = Lens(focus="backend:vm2").apply(snap)
    assert set(shown.nodes) == {"backend:vm2", "top2", "top2-f", "base", "base-f"}


def test_filter_by_driver_file_or_job() -> None:
    snap = chains()
    assert set(Lens(filter="driver:file").apply(snap).nodes) == {
        "top1-f", "mid1-f", "top2-f", "base-f"}
    fnodes = [dataclasses.replace(n, filename=f"/images/{n.key}.qcow2")
              for n in snap.nodes.values()]
    named = GraphSnapshot(fnodes, snap.edges)
    assert set(Lens(filter="file:/images/top1").apply(named).nodes) == {"top1", "top1-f"}
    job = dataclasses.replace(node("job:s0", "block-job", "stream"), name="s0")
    with_job = GraphSnapshot([*snap.nodes.values(), job],
                             [*snap.edges, EdgeInfo("job:s0", "top1", "main node")])
    assert set(Lens(filter="job:s0").apply(with_job).nodes) == {"job:s0", "top1", "top1-f"}
    assert set(Lens(filter="MID").apply(snap).nodes) == {"mid1", "mid1-f"}


# -- incremental placement, routing and re-layout in the scene ------------------------------

def test_new_cards_are_announced_and_overlap_nothing(qapp: QApplication) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    placed: list[list[str]] = []
    scene.cardsPlaced.connect(placed.append)
    nodes = [*snap.nodes.values(), node("x-top"), node("x-base")]
    edges = [*snap.edges, EdgeInfo("x-top", "x-base", "backing")]
    scene.show_snapshot(GraphSnapshot(nodes, edges))
    assert placed == [["x-top", "x-base"]]
    d = scene.drawing()
    assert quality.overlaps(d.rects) == []
    assert quality.links_through_cards(d.rects, d.paths) == []


def test_a_card_dragged_onto_a_link_sends_the_link_around_it(qapp: QApplication) -> None:
    scene = GraphScene()
    scene.show_snapshot(chains())
    scene.move_cards(["mid1", "mid1-f", "base", "base-f"], 0, 700)   # a long link
    d = scene.drawing()
    assert quality.links_through_cards(d.rects, d.paths) == []
    link = scene.edges[("top1", "backing", "mid1")]
    mid = link.point_at(0.5)
    card = scene.nodes["top2"]
    # put top2 right across top1's backing link
    scene.move_cards(["top2"], mid.x() - card.width / 2 - card.px,
                     mid.y() - card.height / 2 - card.py)
    d = scene.drawing()
    assert quality.links_through_cards(d.rects, d.paths) == []
    # and its own links follow it around the other cards
    assert link.points[0][1] == scene.nodes["top1"].py + scene.nodes["top1"].height


def test_relayout_glides_to_the_fresh_layout(qapp: QApplication, qtbot: Any) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    fresh = scene.positions()
    scene.move_cards(["base"], 900, 300)
    with qtbot.waitSignal(scene.relaidOut, timeout=3000):
        scene.relayout(animate=True)
        assert scene.animation.running()
    assert scene.positions() == fresh
    d = scene.drawing()
    assert quality.links_through_cards(d.rects, d.paths) == []


# -- the editor, on a real peer: edits and events leave the picture in place -----------------

def _ancestors(snap: GraphSnapshot, keys: set[str]) -> set[str]:
    out: set[str] = set()
    stack = list(keys)
    while stack:
        k = stack.pop()
        for e in snap.parents(k):
            if e.parent not in out:
                out.add(e.parent)
                stack.append(e.parent)
    return out


def test_snapshot_stream_and_open_image_move_only_what_they_must(
        qtbot: Any, aloop: Any, window: Any, gui_peer: Any, tmp_path: Any) -> None:
    """After a snapshot, a stream's completion and an image opened, every card is where
    it was but for those that had to move (the ancestors of a node inserted into a
    link, lifted a row to make room for it), and the new cards overlap nothing."""
    from engine.formats import create_qcow2
    from tests.gui.test_editor import open_demo
    from tests.gui.test_edits import idle, select

    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    scene = window.scene
    window.resize(1200, 800)
    window.view.fit()

    def settled(before: dict[str, tuple[float, float]], inserted: set[str]) -> set[str]:
        """Cards that moved; checks that nothing overlaps and no link crosses a card."""
        after = scene.positions()
        moved = {k for k, p in before.items() if k in after and after[k] != p}
        d = scene.drawing()
        assert quality.overlaps(d.rects) == []
        assert quality.links_through_cards(d.rects, d.paths) == []
        assert moved <= _ancestors(scene.snapshot, inserted), moved
        return moved

    # 1. a snapshot of vm2's disk: the overlay goes between the drive and its old top
    before = scene.positions()
    select(window, "vm2-top")
    window.act_snapshot.trigger()
    qtbot.waitUntil(lambda: "vm2-top-snap1" in scene.nodes and idle(window), timeout=30000)
    settled(before, {"vm2-top-snap1"})
    assert scene.positions()["vm2-top"] == before["vm2-top"]

    # 2. a stream into vm1's top, to its completion (its job and filter come and go)
    before = scene.positions()
    seen: set[str] = set()
    scene.snapshotShown.connect(lambda _d: seen.update(scene.nodes))
    select(window, "vm1-top")
    window.act_stream.trigger()
    qtbot.waitUntil(lambda: idle(window) and scene.snapshot.backing("vm1-top") is None
                    and not any(k.startswith("job:") for k in scene.nodes), timeout=30000)
    settled(before, (seen - set(before)) | {"vm1-top"})
    assert all(scene.positions()[k] == before[k] for k in ("base", "vm2-top", "vm3-top"))

    # 3. an image (and its backing file) opened: a new part, in free space, in view
    before = scene.positions()
    base, top = tmp_path / "extra-base.qcow2", tmp_path / "extra.qcow2"
    create_qcow2(base, 1 << 20)
    create_qcow2(top, 1 << 20, backing_file=str(base), backing_format="qcow2")
    placed: list[list[str]] = []
    scene.cardsPlaced.connect(placed.append)
    window.open_image(str(top))
    qtbot.waitUntil(lambda: "extra" in scene.nodes and idle(window), timeout=30000)
    assert settled(before, set()) == set()
    new = [k for k in scene.nodes if k not in before]
    assert "extra" in new and any("extra" in k for keys in placed for k in keys)
    visible = window.view.mapToScene(window.view.viewport().rect()).boundingRect()
    assert visible.intersects(scene.nodes["extra"].scene_rect())


def test_view_menu_folds_focuses_filters_and_hides_the_minimap(
        qtbot: Any, aloop: Any, window: Any, gui_peer: Any, tmp_path: Any) -> None:
    from tests.gui.test_editor import open_demo

    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    scene, controls = window.scene, window.view_controls
    real = scene.snapshot
    # fold vm1's chain (vm1-top over vm1-mid; base is shared, so it stays)
    window.view.center_on_node("vm1-mid")
    assert controls.act_fold.isEnabled()
    controls.act_fold.trigger()
    scene.animation.finish()
    folded = fold_key("vm1-top")
    assert folded in scene.nodes and "vm1-mid" not in scene.nodes and "base" in scene.nodes
    assert scene.snapshot is real and window.selected_node() is None
    assert scene.edges[(folded, "backing", "base")]
    # finding a folded node finds its summary card; a double-click unfolds it
    assert window.find_node("vm1-mid") == "vm1-mid"
    assert scene.selected_keys() == [folded]
    window.view.nodeActivated.emit(folded)
    scene.animation.finish()
    assert "vm1-mid" in scene.nodes and folded not in scene.nodes
    # focus on vm2: only what it uses (qemu-storage-daemon has no VMs: nothing to focus)
    window.view.center_on_node("vm2-top")
    controls.act_focus.trigger()
    scene.animation.finish()
    if "backend:vm2" in real.nodes:
        assert set(scene.nodes) == {"backend:vm2", "vm2-top", "vm2-top-file", "base",
                                    "base-file"}
    else:
        assert set(scene.nodes) == set(real.nodes)
        assert "no VM uses vm2-top" in window.message_label.text()
    controls.act_everything.trigger()
    scene.animation.finish()
    assert set(scene.nodes) == set(real.nodes)
    # a filter typed in the toolbar
    controls.set_filter("driver:file")
    scene.animation.finish()
    assert scene.nodes and all(c.info.driver == "file" for c in scene.nodes.values())
    controls.show_everything()
    scene.animation.finish()
    assert set(scene.nodes) == set(real.nodes)
    # the minimap hides and is remembered hidden
    assert window.minimap.isVisible()
    controls.act_minimap.trigger()
    assert not window.minimap.isVisible()
    assert window.settings.value("minimap", True, type=bool) is False

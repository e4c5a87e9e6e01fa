"""The scene is a projection of snapshots, updated item by item from diffs."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtWidgets import QApplication

from engine.graph.snapshot import EdgeInfo, GraphSnapshot
from gui.views.node_card import NodeCard
from gui.views.palette import DARK
from gui.views.scene import GraphScene
from tests.gui.test_layout import chains, node

pytestmark = pytest.mark.gui


def test_first_snapshot_builds_one_item_per_node_and_edge(qapp: QApplication) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    assert set(scene.nodes) == set(snap.nodes)
    assert len(scene.edges) == len(snap.edges)
    assert all(isinstance(card, NodeCard) for card in scene.nodes.values())
    # cards are drawn by one layer, not as graphics items of their own
    assert set(scene.items()) == {scene.edge_layer, scene.card_layer, scene.frame_layer}
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

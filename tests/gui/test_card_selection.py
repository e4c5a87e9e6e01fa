"""Cards are not graphics items: the canvas selects, moves and explains them itself,
the way Qt's own items behaved (click, Ctrl+click, rubber band, right click, tooltip)."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QContextMenuEvent, QHelpEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolTip

from engine.graph.snapshot import GraphSnapshot
from gui.views.canvas import GraphCanvas
from gui.views.scene import GraphScene
from tests.gui.test_layers import shown_view
from tests.gui.test_layout import chains

pytestmark = pytest.mark.gui

CTRL = Qt.KeyboardModifier.ControlModifier
NONE = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


def point_on(view: GraphCanvas, key: str) -> QPoint:
    """A viewport point on the card of ``key`` (left of its centre: not a port)."""
    card = view.graph_scene.nodes[key]
    at = QPointF(card.px + 30, card.py + card.height / 2)
    view.centerOn(at)
    return view.mapFromScene(at)


def click(view: GraphCanvas, key: str, modifier: Qt.KeyboardModifier = NONE) -> None:
    QTest.mouseClick(view.viewport(), LEFT, modifier, point_on(view, key))


def test_click_selects_one_card_and_ctrl_click_toggles(qapp: QApplication, qtbot: Any) -> None:
    view = shown_view(qtbot)
    scene = view.graph_scene
    changes: list[list[str]] = []
    scene.selectionChanged.connect(lambda: changes.append(scene.selected_keys()))
    click(view, "top1")
    assert scene.selected_keys() == ["top1"] and view.selected_key() == "top1"
    click(view, "mid1", CTRL)
    assert set(scene.selected_keys()) == {"top1", "mid1"}
    click(view, "top1", CTRL)
    assert scene.selected_keys() == ["mid1"]
    click(view, "base")
    assert scene.selected_keys() == ["base"]
    assert changes[-1] == ["base"] and len(changes) == 4
    click(view, "base")                      # no change, no signal
    assert len(changes) == 4


def test_a_click_on_empty_canvas_clears_and_a_rubber_band_selects(qapp: QApplication,
                                                                  qtbot: Any) -> None:
    view = shown_view(qtbot)
    scene = view.graph_scene
    click(view, "top1")
    rect = scene.card_layer.cards_rect()
    outside = QPointF(rect.left() - 40, rect.top() - 40)
    view.centerOn(outside)
    QTest.mouseClick(view.viewport(), LEFT, NONE, view.mapFromScene(outside))
    assert scene.selected_keys() == []
    # a band around mid1 and its file node's card beside it (and nothing else)
    mid1, mid2 = scene.nodes["mid1"], scene.nodes["mid1-f"]
    view.zoom_by(0.5)
    start = QPointF(min(mid1.px, mid2.px) - 10, min(mid1.py, mid2.py) - 10)
    end = QPointF(max(mid1.px + mid1.width, mid2.px + mid2.width) + 5,
                  max(mid1.py + mid1.height, mid2.py + mid2.height) + 5)
    view.centerOn((start + end) / 2)
    a, b = view.mapFromScene(start), view.mapFromScene(end)
    area = QRectF(view.mapToScene(a), view.mapToScene(b)).normalized()
    expected = {k for k, c in scene.nodes.items() if area.intersects(c.scene_rect())}
    assert {"mid1", "mid1-f"} <= expected and "top1" not in expected
    QTest.mousePress(view.viewport(), LEFT, NONE, a)
    for i in range(1, 9):
        QTest.mouseMove(view.viewport(), a + (b - a) * (i / 8))
    QTest.mouseRelease(view.viewport(), LEFT, NONE, b)
    assert set(scene.selected_keys()) == expected


def test_dragging_a_selected_card_moves_the_whole_selection(qapp: QApplication,
                                                            qtbot: Any) -> None:
    view = shown_view(qtbot)
    scene = view.graph_scene
    click(view, "top1")
    click(view, "top2", CTRL)
    before = {k: (scene.nodes[k].px, scene.nodes[k].py) for k in scene.nodes}
    start = point_on(view, "top1")
    end = start + QPoint(0, -60)
    QTest.mousePress(view.viewport(), LEFT, NONE, start)
    for i in range(1, 5):
        QTest.mouseMove(view.viewport(), start + (end - start) * (i / 4))
    QTest.mouseRelease(view.viewport(), LEFT, NONE, end)
    for k, (x, y) in before.items():
        card = scene.nodes[k]
        if k in ("top1", "top2"):
            assert card.px == pytest.approx(x, abs=1) and card.py < y - 30
        else:
            assert (card.px, card.py) == (x, y)
    assert set(scene.selected_keys()) == {"top1", "top2"}


def test_right_click_selects_the_card_under_it(qapp: QApplication, qtbot: Any) -> None:
    view = shown_view(qtbot)
    asked: list[object] = []
    view.contextMenuRequested.connect(lambda key, _pos: asked.append(key))
    click(view, "top1")
    at = point_on(view, "top2")
    QTest.mousePress(view.viewport(), Qt.MouseButton.RightButton, NONE, at)
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.RightButton, NONE, at)
    QApplication.sendEvent(view.viewport(), _context_event(view, at))
    assert view.graph_scene.selected_keys() == ["top2"]
    assert asked == ["top2"]


def _context_event(view: GraphCanvas, at: QPoint) -> QContextMenuEvent:
    return QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, view.viewport().mapToGlobal(at))


def test_resting_on_a_card_shows_its_tooltip(qapp: QApplication, qtbot: Any) -> None:
    view = shown_view(qtbot)
    at = point_on(view, "mid1")
    event = QHelpEvent(QHelpEvent.Type.ToolTip, at, view.viewport().mapToGlobal(at))
    QApplication.sendEvent(view.viewport(), event)
    qtbot.waitUntil(QToolTip.isVisible, timeout=3000)
    assert "mid1" in QToolTip.text() and "virtual size" in QToolTip.text()
    QToolTip.hideText()


def test_a_removed_selected_node_leaves_the_selection(qapp: QApplication) -> None:
    scene = GraphScene()
    snap = chains()
    scene.show_snapshot(snap)
    scene.select(["top1", "base"])
    changed: list[bool] = []
    scene.selectionChanged.connect(lambda: changed.append(True))
    keep = [n for n in snap.nodes.values() if n.key != "top1"]
    scene.show_snapshot(GraphSnapshot(keep, [e for e in snap.edges
                                             if "top1" not in (e.parent, e.child)]))
    assert scene.selected_keys() == ["base"] and changed
    scene.reset()
    assert scene.selected_keys() == [] and len(changed) == 2


def test_ctrl_a_selects_every_card_and_escape_clears(window: Any, qtbot: Any) -> None:
    """Select all is the window's Edit action (a text field keeps Ctrl+A for itself);
    Esc on the canvas clears the selection."""
    window.show_snapshot(chains())
    scene, view = window.scene, window.view
    window.show()
    qtbot.waitExposed(window)
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_A, CTRL)
    assert set(scene.selected_keys()) == set(scene.nodes)
    QTest.keyClick(view, Qt.Key.Key_Escape)
    assert scene.selected_keys() == []

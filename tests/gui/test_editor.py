"""The editor end to end: real widgets, real mouse events, a real peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from gui.images.demo import build_demo
from gui.window.main_window import MainWindow
from tests.gui.conftest import run
from tests.support.peer import Peer

pytestmark = pytest.mark.gui


def open_demo(qtbot: Any, aloop: Any, window: MainWindow, peer: Peer, tmp_path: Path) -> None:
    assert run(qtbot, aloop, window.open_session(peer.endpoint, peer.kind))
    run(qtbot, aloop, build_demo(window.bridge.session, tmp_path / "demo"))
    qtbot.waitUntil(lambda: "vm3-top" in window.scene.nodes, timeout=10000)
    window.relayout()


def view_point(window: MainWindow, scene_pos: QPointF) -> QPoint:
    return window.view.mapFromScene(scene_pos)


def drag(qtbot: Any, window: MainWindow, start: QPointF, end: QPointF,
         release: bool = True) -> None:
    vp = window.view.viewport()
    a, b = view_point(window, start), view_point(window, end)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, 6):
        p = a + (b - a) * (i / 5)
        QTest.mouseMove(vp, p)
    if release:
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def test_drag_backing_edge_rebases_on_the_peer(qtbot: Any, aloop: Any, window: MainWindow,
                                               gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    window.view.fit()
    edge = window.scene.edges[("vm2-top", "backing", "base")]
    target = window.scene.nodes["vm1-mid"]
    start = edge.point_at(0.95)  # the arrow's end (vm1-mid's arrow ends there too)
    drag(qtbot, window, start, target.scene_rect().center())
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm2-top") == "vm1-mid",
                    timeout=10000)
    # the peer itself says so
    named = gui_peer.ok("query-named-block-nodes", {"flat": True})
    vm2 = next(n for n in named if n["node-name"] == "vm2-top")
    assert "vm1-mid.qcow2" in vm2["backing_file"]
    # the edit is one undo entry
    assert window.edits.undo_stack.count() == 1
    window.undo()
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm2-top") == "base", timeout=10000)
    window.redo()
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm2-top") == "vm1-mid",
                    timeout=10000)


def test_drag_making_a_cycle_is_refused_and_sends_nothing(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    window.view.reset_zoom()
    # base's backing port onto vm1-top (base <- vm1-mid <- vm1-top): a cycle
    base = window.scene.nodes["base"]
    top = window.scene.nodes["vm1-top"]
    start = base.backing_port_rect().center()
    window.view.centerOn((start + top.scene_rect().center()) / 2)
    sent_before = window.bridge.session.traffic.sent_commands(0)
    drag(qtbot, window, start, top.scene_rect().center(), release=False)
    assert window.view.dragging()
    reason = window.view.drag_reason()
    assert "cycle" in reason.lower() or "loop" in reason.lower(), reason
    assert top.drop_state is False
    assert reason in window.message_label.text()
    QTest.mouseRelease(window.view.viewport(), Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier,
                       view_point(window, top.scene_rect().center()))
    qtbot.waitUntil(lambda: "refused" in window.error_label.text(), timeout=10000)
    sent_after = window.bridge.session.traffic.sent_commands(0)
    edits = [c for c in sent_after[len(sent_before):]
             if not c.startswith(("query-", "x-debug-query"))]
    assert edits == []
    assert window.scene.snapshot.backing("base") is None
    assert "refused" in window.error_label.text()


def test_drop_on_empty_canvas_detaches_after_confirmation(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    window.view.fit()
    edge = window.scene.edges[("vm2-top", "backing", "base")]
    start = edge.point_at(0.95)
    empty = window.scene.graph_rect().bottomRight() - QPointF(60, 30)  # below the base row
    assert window.scene.node_at(empty) is None
    prompter = window.prompter
    prompter.confirm_answer = False  # "Detach vm2-top from base?" — No
    asked = len(prompter.asked)
    drag(qtbot, window, start, empty)
    qtbot.waitUntil(lambda: len(prompter.asked) > asked, timeout=10000)
    assert window.scene.snapshot.backing("vm2-top") == "base"
    assert ("confirm", prompter.asked[-1][1]) == prompter.asked[-1]
    assert "Detach vm2-top" in prompter.asked[-1][1]
    prompter.confirm_answer = True
    drag(qtbot, window, edge.point_at(0.95), empty)
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm2-top") is None, timeout=10000)
    window.undo()
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm2-top") == "base", timeout=10000)

"""Staged edits in the real window: gestures collect, one Apply sends one reopen.

Three drags — one with Shift held, two with Edit → Stage edits on — send nothing; they
show as ghost links and three rows of the Staged edits dock. Apply reviews them once and
sends ONE ``blockdev-reopen`` carrying all three nodes; it is one undo entry, and one undo
puts all three back. If the graph changed meanwhile so that one staged item is refused,
the whole is refused, nothing is sent, the refused row is marked; removing it with its ✕
lets the rest apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from gui.planner.intents import SetBacking
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter
from tests.gui.test_editor import open_demo, view_point
from tests.gui.test_edits import idle
from tests.support.peer import Peer

pytestmark = pytest.mark.gui


def drag_link(window: MainWindow, start: QPointF, end: QPointF,
              modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    vp = window.view.viewport()
    a, b = view_point(window, start), view_point(window, end)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, 6):
        QTest.mouseMove(vp, a + (b - a) * (i / 5))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, modifier, b)


def arrow_end(window: MainWindow, parent: str, child: str) -> QPointF:
    return window.scene.edges[(parent, "backing", child)].point_at(0.95)


def centre(window: MainWindow, key: str) -> QPointF:
    return window.scene.nodes[key].scene_rect().center()


def reopens(window: MainWindow, since: int) -> list[dict[str, Any]]:
    return [dict(e.message) for e in window.bridge.session.traffic
            if e.seq > since and e.direction == "sent"
            and e.message.get("execute") == "blockdev-reopen"]


def stage_three(qtbot: Any, window: MainWindow) -> None:
    window.view.fit()
    # one with Shift held (staging is off), two with staging on
    drag_link(window, arrow_end(window, "vm2-top", "base"), centre(window, "vm1-mid"),
              Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: len(window.staging.items) == 1, timeout=5000)
    window.act_stage.trigger()
    assert window.staging.enabled and window.docks["staging"].isVisible()
    drag_link(window, arrow_end(window, "vm3-top", "base"), centre(window, "vm1-mid"))
    qtbot.waitUntil(lambda: len(window.staging.items) == 2, timeout=5000)
    spare = window.scene.nodes["spare"]
    drag_link(window, spare.backing_port_rect().center(), centre(window, "base"))
    qtbot.waitUntil(lambda: len(window.staging.items) == 3, timeout=5000)


def test_three_staged_drags_are_applied_as_one_reopen_and_undone_as_one(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    before = window.bridge.session.traffic.last_seq
    stage_three(qtbot, window)
    assert window.staging.items == [SetBacking("vm2-top", "vm1-mid"),
                                    SetBacking("vm3-top", "vm1-mid"),
                                    SetBacking("spare", "base")]
    # nothing sent, nothing changed; drawn as ghosts and listed, each removable
    assert reopens(window, before) == []
    snap = window.scene.snapshot
    assert snap.backing("vm2-top") == "base" and snap.backing("spare") is None
    ghosts = {(g.parent, g.child) for g in window.marks.ghosts}
    assert ghosts == {("vm2-top", "vm1-mid"), ("vm3-top", "vm1-mid"), ("spare", "base")}
    panel = window.staging_panel
    assert panel.count() == 3 and "vm3-top" in panel.item_text(1)
    assert panel.remove_button(2).isEnabled() and panel.apply_button.isEnabled()
    undo_before = window.edits.undo_stack.count()

    qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("spare") == "base"
                    and idle(window), timeout=15000)
    (reopen,) = reopens(window, before)
    names = sorted(o["node-name"] for o in reopen["arguments"]["options"])
    assert names == ["spare", "vm2-top", "vm3-top"]
    snap = window.scene.snapshot
    assert snap.backing("vm2-top") == "vm1-mid" and snap.backing("vm3-top") == "vm1-mid"
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    review = prompter.reviews[-1]
    assert review.consequences is not None
    readers = {r.key for r in review.consequences.readers}
    drives = gui_peer.kind == "bundled engine"       # its demo has VM drives on the tops
    assert readers == ({"backend:vm2", "backend:vm3", "spare"} if drives
                       else {"vm2-top", "vm3-top", "spare"})
    assert window.staging.items == [] and window.marks.ghosts == ()
    assert window.edits.undo_stack.count() == undo_before + 1
    # one undo: one reopen puts all three back
    mark = window.bridge.session.traffic.last_seq
    window.undo()
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("spare") is None and idle(window),
                    timeout=15000)
    assert len(reopens(window, mark)) == 1
    snap = window.scene.snapshot
    assert snap.backing("vm2-top") == "base" and snap.backing("vm3-top") == "base"


def test_one_refused_item_refuses_the_whole_and_sends_nothing(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    stage_three(qtbot, window)
    # meanwhile another client closes spare: staged item #3 names a node that is gone
    gui_peer.ok("blockdev-del", {"node-name": "spare"})
    window.refresh()
    qtbot.waitUntil(lambda: "spare" not in window.scene.nodes, timeout=10000)
    before = window.bridge.session.traffic.last_seq
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    window.act_apply_staged.trigger()
    qtbot.waitUntil(lambda: bool(prompter.errors) and idle(window), timeout=10000)
    assert reopens(window, before) == []
    title, text = prompter.errors[-1]
    assert "refused" in title and "Nothing was sent" in text and "#3" in text
    assert "spare" in text
    assert window.staging.refused_index == 2
    panel = window.staging_panel
    assert "color: #c62828" in panel.list.itemWidget(panel.list.item(2)).findChild(
        type(panel.hint)).styleSheet()
    snap = window.scene.snapshot
    assert snap.backing("vm2-top") == "base" and snap.backing("vm3-top") == "base"
    # remove the refused item: the other two apply, as one reopen
    qtbot.mouseClick(panel.remove_button(2), Qt.MouseButton.LeftButton)
    assert len(window.staging.items) == 2
    window.act_apply_staged.trigger()
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm3-top") == "vm1-mid"
                    and idle(window), timeout=15000)
    (reopen,) = reopens(window, before)
    assert sorted(o["node-name"] for o in reopen["arguments"]["options"]) == [
        "vm2-top", "vm3-top"]

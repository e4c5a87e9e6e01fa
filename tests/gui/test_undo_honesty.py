"""Undo tells the truth, in the real window on a real peer.

* An edit whose inverse would be refused afterwards is not offered as undoable: a
  re-point away from a chain QEMU opened from an image header frees those nodes (nothing
  holds them), so the review says it cannot be undone, and why, before it runs.
* A failed undo stays where it was: the edit stays on the undo stack (not moved to redo)
  and QEMU's error is shown.
* Undo and redo are disabled while disconnected, and the history is cleared when the
  peer changes (another peer, or a reconnection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gui.images.demo import create_images
from gui.session import ConnectionStatus
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter, run
from tests.gui.test_editor import drag, open_demo
from tests.gui.test_edits import idle, select
from tests.support.peer import Peer, started_peer

pytestmark = pytest.mark.gui


def test_re_pointing_away_from_a_chain_opened_from_headers_says_it_cannot_be_undone(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    paths = create_images(tmp_path / "images")
    assert run(qtbot, aloop, window.open_session(gui_peer.endpoint, gui_peer.kind))
    window.open_images([str(paths["vm1-top"]), str(paths["spare"])])
    qtbot.waitUntil(lambda: "spare" in window.scene.nodes and idle(window), timeout=10000)
    snap = window.scene.snapshot
    implicit = snap.backing("vm1-top")
    assert implicit is not None and snap.nodes[implicit].auto_named
    assert window.edits.undo_stack.count() == 1          # opening both: one entry
    window.relayout()
    window.view.fit()
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    edge = window.scene.edges[("vm1-top", "backing", implicit)]
    drag(qtbot, window, edge.point_at(0.95), window.scene.nodes["spare"].scene_rect().center())
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm1-top") == "spare"
                    and idle(window), timeout=10000)
    review = prompter.reviews[-1]
    # said before it ran: cannot be undone, because QEMU frees the implicit chain
    assert review.irreversible and "QEMU closes it" in review.irreversible
    assert implicit in review.irreversible
    assert review.consequences is not None and implicit in review.consequences.freed
    assert ("confirm", review.text()) in prompter.asked
    # and it was not pushed: the undo stack still holds only the opening of the images
    assert window.edits.undo_stack.count() == 1
    assert implicit not in window.scene.snapshot.nodes
    assert "cannot be undone" in window.message_label.full_text()


def test_a_failed_undo_stays_on_the_undo_stack_with_qemus_error(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    # no safety re-read: the graph the undo is checked on is the one before the other
    # client's change (no event tells of an export), so the undo reaches QEMU, which
    # refuses it
    window.connection.set_safety_interval(0)
    with started_peer("qsd", tmp_path) as peer:
        paths = create_images(tmp_path / "images")
        assert run(qtbot, aloop, window.open_session(peer.endpoint, peer.kind))
        window.open_image(str(paths["spare"]))
        qtbot.waitUntil(lambda: "spare" in window.scene.nodes and idle(window), timeout=10000)
        stack = window.edits.undo_stack
        assert (stack.count(), stack.index()) == (1, 1) and window.act_undo.isEnabled()
        # another client starts using the image the window opened
        peer.ok("nbd-server-start", {"addr": {"type": "unix", "data": {
            "path": str(tmp_path / "nbd.sock")}}})
        peer.ok("block-export-add", {"type": "nbd", "id": "e0", "node-name": "spare"})
        before = window.bridge.session.traffic.last_seq
        window.undo()
        qtbot.waitUntil(lambda: idle(window) and window.error_label.full_text() != "",
                        timeout=10000)
        assert "blockdev-del" in window.bridge.session.traffic.sent_commands(before)
        error = window.error_label.full_text()
        assert "spare" in error and "in use" in error            # QEMU's words
        prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
        assert any("in use" in text for _title, text in prompter.errors)
        # it stays where it was: still undoable, nothing to redo
        assert (stack.count(), stack.index()) == (1, 1)
        assert window.act_undo.isEnabled() and not window.act_redo.isEnabled()
        # once the other client lets go, the same undo works
        peer.ok("block-export-del", {"id": "e0"})
        qtbot.waitUntil(lambda: not peer.ok("query-block-exports"), timeout=10000)
        window.refresh()
        qtbot.waitUntil(lambda: not any(k.startswith("backend:")
                                        for k in window.scene.nodes), timeout=10000)
        window.undo()
        qtbot.waitUntil(lambda: "spare" not in window.scene.nodes and idle(window),
                        timeout=10000)
        assert stack.index() == 0 and window.act_redo.isEnabled()
        run(qtbot, aloop, window.close_session())


def test_undo_is_disabled_while_disconnected_and_cleared_when_the_peer_changes(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    first = Peer(tmp_path / "first")
    (tmp_path / "first").mkdir()
    first.start()
    try:
        open_demo(qtbot, aloop, window, first, tmp_path)
        select(window, "spare")
        window.act_ro.trigger()
        qtbot.waitUntil(lambda: window.scene.snapshot.nodes["spare"].read_only
                        and idle(window), timeout=10000)
        assert window.act_undo.isEnabled() and window.edits.undo_stack.count() == 1
        first.kill()
        qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.LOST,
                        timeout=10000)
        assert not window.act_undo.isEnabled()
        window.undo()                      # the shortcut while disconnected: nothing runs
        assert not window.edits.running and window.edits.undo_stack.index() == 1
        # the peer comes back (another process on the same socket): the history goes
        first.start()
        qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.CONNECTED,
                        timeout=15000)
        assert window.edits.undo_stack.count() == 0 and not window.act_undo.isEnabled()
        assert "undo history cleared" in window.message_label.full_text()
        # an edit on it, then a connection to another peer: cleared again
        (tmp_path / "other").mkdir()
        with started_peer("qsd", tmp_path / "other") as other:
            run(qtbot, aloop, window.bridge.session.execute(
                "blockdev-add", {"driver": "null-co", "node-name": "n0"}))
            window.refresh()
            qtbot.waitUntil(lambda: "n0" in window.scene.nodes, timeout=10000)
            select(window, "n0")
            window.act_ro.trigger()
            qtbot.waitUntil(lambda: window.edits.undo_stack.count() == 1 and idle(window),
                            timeout=10000)
            assert run(qtbot, aloop, window.open_remote(other.address))
            assert window.edits.undo_stack.count() == 0
            assert not window.act_undo.isEnabled()
            run(qtbot, aloop, window.close_session())
    finally:
        first.stop()

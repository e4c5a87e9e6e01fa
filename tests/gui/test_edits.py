"""Snapshot, stream, commit, delete and undo/redo from the editor, end to end on a peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gui.executor import PlanExecutor
from gui.planner.plan import WaitJob
from gui.session import ConnectionStatus
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter
from tests.gui.test_editor import open_demo
from tests.support.peer import Peer

pytestmark = pytest.mark.gui


def idle(window: MainWindow) -> bool:
    return window.bridge is not None and not window.bridge.busy and not window.edits.running


def select(window: MainWindow, key: str) -> None:
    assert window.view.center_on_node(key)
    assert window.selected_node() == key


def test_snapshot_then_undo_and_redo(qtbot: Any, aloop: Any, window: MainWindow,
                                     gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "spare")
    window.act_snapshot.trigger()
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    suggested = prompter.asked[-1][1]
    assert suggested == str(tmp_path / "demo" / "spare-snap1.qcow2")
    qtbot.waitUntil(lambda: "spare-snap1" in window.scene.nodes and idle(window),
                    timeout=15000)
    snap = window.scene.snapshot
    assert snap.backing("spare-snap1") == "spare"
    assert Path(suggested).exists()
    assert prompter.previews and prompter.previews[-1].summary
    assert window.edits.undo_stack.count() == 1
    window.undo()
    qtbot.waitUntil(lambda: "spare-snap1" not in window.scene.nodes and idle(window),
                    timeout=15000)
    window.redo()
    qtbot.waitUntil(lambda: "spare-snap1" in window.scene.nodes and idle(window),
                    timeout=15000)


def test_stream_runs_to_completion_with_progress(qtbot: Any, aloop: Any, window: MainWindow,
                                                 gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "vm1-top")
    plan = PlanExecutor(window.bridge.session).plan(__import__("gui.planner.intents",
                                                 fromlist=["Stream"]).Stream("vm1-top"))
    job_id = next(s.job_id for s in plan.steps if isinstance(s, WaitJob))
    window.act_stream.trigger()
    qtbot.waitUntil(lambda: window.jobs.progress(job_id) == 1000, timeout=20000)
    qtbot.waitUntil(lambda: idle(window) and window.scene.snapshot.backing("vm1-top") is None,
                    timeout=20000)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    if plan.irreversible:  # said so before it ran
        assert any(kind == "confirm" and "cannot be undone" in text
                   for kind, text in prompter.asked)
    assert window.edits.undo_stack.count() == (0 if plan.irreversible else 1)
    qtbot.waitUntil(lambda: job_id not in window.bridge.session.jobs, timeout=10000)
    window.jobs.clear_finished()
    assert window.jobs.progress(job_id) == -1


def test_commit_down_to_a_base(qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer,
                               tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "spare")
    window.act_snapshot.trigger()
    qtbot.waitUntil(lambda: "spare-snap1" in window.scene.nodes and idle(window), timeout=15000)
    select(window, "spare-snap1")
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.choice = "spare"
    from gui.planner.intents import Commit

    plan = PlanExecutor(window.bridge.session).plan(Commit("spare-snap1", "spare"))
    assert plan.ok, plan.refusals
    job_id = next(s.job_id for s in plan.steps if isinstance(s, WaitJob))
    window.act_commit.trigger()
    qtbot.waitUntil(lambda: window.jobs.progress(job_id) == 1000, timeout=20000)
    qtbot.waitUntil(lambda: idle(window) and job_id not in window.bridge.session.jobs,
                    timeout=20000)
    assert ("choose", "spare") in prompter.asked
    # no failure, and the graph re-read afterwards matches what the plan promised
    assert not prompter.errors, prompter.errors
    assert "done" in window.message_label.text()


def delete_spare(qtbot: Any, window: MainWindow, peer: Peer) -> None:
    select(window, "spare")
    window.act_delete.trigger()
    qtbot.waitUntil(lambda: "spare" not in window.scene.nodes and idle(window), timeout=15000)
    names = {n["node-name"] for n in peer.ok("query-named-block-nodes", {"flat": True})}
    assert "spare" not in names and "spare-file" not in names


def test_delete(qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer,
                tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.confirm_answer = False  # "Delete node spare?" — No: nothing happens
    select(window, "spare")
    asked = len(prompter.asked)
    window.act_delete.trigger()
    qtbot.waitUntil(lambda: len(prompter.asked) > asked, timeout=10000)
    assert "spare" in prompter.asked[-1][1]
    assert "spare" in window.scene.nodes and "blockdev-del" not in (
        window.bridge.session.traffic.sent_commands(0))
    prompter.confirm_answer = True
    delete_spare(qtbot, window, gui_peer)
    assert not prompter.errors


def test_delete_then_undo_restores_the_node(qtbot: Any, aloop: Any, window: MainWindow,
                                            gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    delete_spare(qtbot, window, gui_peer)
    assert window.edits.undo_stack.count() == 1
    window.undo()
    qtbot.waitUntil(lambda: idle(window), timeout=15000)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    assert not prompter.errors, prompter.errors
    assert "spare" in window.scene.nodes


def test_read_only_toggle_and_refused_edit(qtbot: Any, aloop: Any, window: MainWindow,
                                           gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "spare")
    window.act_ro.trigger()
    qtbot.waitUntil(lambda: window.scene.snapshot.nodes["spare"].read_only and idle(window),
                    timeout=15000)
    window.undo()
    qtbot.waitUntil(lambda: not window.scene.snapshot.nodes["spare"].read_only
                    and idle(window), timeout=15000)
    # deleting a node that has users is refused before anything is sent
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    before = window.bridge.session.traffic.last_seq
    window.action_delete("base")
    qtbot.waitUntil(lambda: bool(prompter.errors) and idle(window), timeout=5000)
    sent = [c for c in window.bridge.session.traffic.sent_commands(before)
            if not c.startswith(("query-", "x-debug-query-"))]
    assert sent == []
    assert "base" in window.scene.nodes


def test_disconnect_shows_state_stays_usable_and_reconnects(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    workdir = tmp_path / "peer"
    workdir.mkdir()
    peer = Peer(workdir)
    peer.start()
    try:
        assert __import__("tests.gui.conftest", fromlist=["run"]).run(
            qtbot, aloop, window.open_remote(peer.address))
        peer.ok("blockdev-add", {"driver": "null-co", "node-name": "disk0"})
        window.refresh()
        qtbot.waitUntil(lambda: "disk0" in window.scene.nodes, timeout=10000)
        peer.kill()
        qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.LOST,
                        timeout=10000)
        assert window.banner.isVisible()
        assert "disconnected" in window.conn_label.text()
        # still usable: the last graph stays, navigation and search work, edits are refused
        assert "disk0" in window.scene.nodes
        assert window.find_node("disk0") == "disk0"
        assert not window.act_delete.isEnabled()
        ok, reason = window.validate_drop("disk0", "disk0")
        assert not ok and reason == "not connected"
        peer.start()
        qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.CONNECTED,
                        timeout=15000)
        assert not window.banner.isVisible()
        assert "connected" in window.conn_label.text()
        qtbot.waitUntil(lambda: "disk0" not in window.scene.nodes, timeout=10000)  # new daemon
        assert peer.address in window.recent()
    finally:
        peer.stop()


def test_declined_irreversible_edit_sends_nothing(qtbot: Any, aloop: Any, window: MainWindow,
                                                  gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "vm1-top")
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.confirm_answer = False
    before = window.bridge.session.traffic.last_seq
    window.act_stream.trigger()
    qtbot.waitUntil(lambda: idle(window) and "cancelled" in window.message_label.text(),
                    timeout=5000)
    assert any("cannot be undone" in text for kind, text in prompter.asked if kind == "confirm")
    sent = window.bridge.session.traffic.sent_commands(before)
    # one dialog said it (the review, declined), and nothing was sent
    assert "block-stream" not in sent and len(prompter.reviews) == 1
    assert prompter.reviews[0].irreversible

"""The smaller things a user meets in the real window, each with real widgets.

A failed Connect (or a busy monitor) leaves the working session; the status bar says an
error once and whole, and forgets it once something succeeds or the connection comes
back; About names the versions; a long undo text keeps the Find box on the toolbar;
search finds auto-named nodes by their file; images given on the command line are
reviewed once, in order; a delete is one dialog; the inspector follows the selection;
a new connection starts with an empty jobs list, log and error line; the stream and
commit dialogs' speed limit.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QToolBar, QToolButton

from gui.images.demo import create_images
from gui.planner.plan import QmpCommand
from gui.session import ConnectionStatus
from gui.widgets.dialogs import DialogPrompter, SpeedLimit
from gui.window import app
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter, run
from tests.gui.test_editor import open_demo
from tests.gui.test_edits import idle, select
from tests.support.peer import Peer, RawMonitor, started_peer

pytestmark = pytest.mark.gui


def test_a_failed_connect_keeps_the_working_session(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    bridge = window.bridge
    assert not run(qtbot, aloop, window.open_remote(f"unix:{tmp_path / 'nothing.sock'}"))
    assert window.bridge is bridge and window.connection.is_connected
    assert "vm1-top" in window.scene.nodes
    assert window.conn_label.text().startswith("● connected")
    assert "nothing.sock" in window.error_label.full_text()
    assert "still connected" in window.message_label.full_text()
    # and the session still works
    select(window, "spare")
    window.act_ro.trigger()
    qtbot.waitUntil(lambda: window.scene.snapshot.nodes["spare"].read_only and idle(window),
                    timeout=10000)


def test_a_monitor_another_client_holds_is_said_busy_and_the_session_stays(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with started_peer("qsd", tmp_path / "a") as working, \
            started_peer("qsd", tmp_path / "b") as held:
        assert run(qtbot, aloop, window.open_remote(working.address))
        holder = RawMonitor(held.session_socket)         # another client has it
        try:
            task = aloop.create_task(window.open_remote(held.address))
            qtbot.waitUntil(task.done, timeout=20000)   # was a minute of "connecting…"
            assert task.result() is False
            assert "another client holds this monitor" in window.error_label.full_text()
            assert window.connection.address == working.address
            assert window.conn_label.text().startswith("● connected")
        finally:
            holder.close()
        run(qtbot, aloop, window.close_session())


def test_the_status_bar_says_an_error_once_whole_and_forgets_it(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    peer = Peer(tmp_path / "p")
    (tmp_path / "p").mkdir()
    peer.start()
    try:
        open_demo(qtbot, aloop, window, peer, tmp_path)
        window.action_delete("base")                        # refused: base has users
        qtbot.waitUntil(lambda: window.error_label.full_text() != "" and idle(window),
                        timeout=10000)
        error = window.error_label.full_text()
        assert "base" in error and "is busy" in error             # QEMU's words
        assert error not in window.message_label.full_text()       # said once
        # a long error is kept whole and shown elided in the room it has
        long = "x" * 80 + " the end of a very long QEMU error " + "y" * 300
        window.show_error(long)
        qtbot.wait(1)
        assert window.error_label.full_text() == long and window.error_label.toolTip() == long
        shown = window.error_label.shown_text()
        assert "…" in shown and len(shown) < len(long)
        bar = window.statusBar()
        assert window.conn_label.isVisible()
        assert window.conn_label.geometry().right() <= bar.width()
        # something succeeds: the error is gone
        select(window, "spare")
        window.act_ro.trigger()
        qtbot.waitUntil(lambda: window.scene.snapshot.nodes["spare"].read_only
                        and idle(window), timeout=10000)
        assert window.error_label.full_text() == ""
        # the connection drops and comes back: "disconnected" does not stay on screen
        peer.kill()
        qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.LOST,
                        timeout=10000)
        assert "disconnected" in window.error_label.full_text()
        peer.start()
        qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.CONNECTED,
                        timeout=15000)
        assert window.error_label.full_text() == ""
        assert window.conn_label.text().startswith("● connected")
        assert "disconnected" not in window.statusBar().currentMessage()
    finally:
        peer.stop()


def test_about_names_blockgraph_qt_and_the_peer(qtbot: Any, aloop: Any, window: MainWindow,
                                               gui_peer: Peer, tmp_path: Path) -> None:
    assert f"blockgraph {metadata.version('blockgraph')}" in window.about_text()
    assert "Not connected" in window.about_text()
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    text = window.about_text()
    assert "QEMU 7.2" in text and "PySide6" in text and "Python" in text


def test_a_long_undo_text_keeps_the_find_box_on_the_toolbar(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    images = []
    for n in range(3):
        path = tmp_path / f"a-rather-long-image-name-number-{n}.qcow2"
        from engine.formats import create_qcow2

        create_qcow2(path, 1 << 20)
        images.append(str(path))
    assert window.width() == 1400         # the first run's size on a large screen
    assert run(qtbot, aloop, window.open_bundled(demo=False))
    window.open_images(images)
    qtbot.waitUntil(lambda: window.edits.undo_stack.count() == 1 and idle(window),
                    timeout=10000)
    assert len(window.act_undo.text()) > 80          # the menu names the whole edit
    (bar,) = [b for b in window.findChildren(QToolBar) if b.objectName() == "toolbar-main"]
    button = bar.widgetForAction(window.act_undo)
    assert isinstance(button, QToolButton) and button.text() == "Undo"
    assert "a-rather-long-image-name-number-2" in window.act_undo.toolTip()
    qtbot.wait(1)
    box = window.search.box
    assert box.isVisible() and box.geometry().right() <= bar.width()


def test_search_finds_a_node_qemu_named_by_its_file(qtbot: Any, aloop: Any,
                                                   window: MainWindow, gui_peer: Peer,
                                                   tmp_path: Path) -> None:
    paths = create_images(tmp_path / "images")
    assert run(qtbot, aloop, window.open_session(gui_peer.endpoint, gui_peer.kind))
    window.open_image(str(paths["vm1-top"]))
    qtbot.waitUntil(lambda: "vm1-top" in window.scene.nodes and idle(window), timeout=10000)
    snap = window.scene.snapshot
    mid = snap.backing("vm1-top")
    assert mid is not None and snap.nodes[mid].auto_named
    assert window.find_node("vm1-mid.qcow2") == mid          # the format node first
    assert window.view.selected_key() == mid
    assert window.find_node("vm1-mid") == mid
    assert "vm1-mid.qcow2" in window.search.names.stringList()


def test_images_on_the_command_line_are_reviewed_once_in_order(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    paths = create_images(tmp_path / "images")
    given = [str(paths[n]) for n in ("vm3-top", "spare", "vm2-top")]
    args = app.parse_args(given)
    run(qtbot, aloop, app.start(window, args))
    qtbot.waitUntil(lambda: {"vm3-top", "spare", "vm2-top"} <= set(window.scene.nodes)
                    and idle(window), timeout=15000)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    (review,) = prompter.reviews
    files = [s.arguments["file"]["filename"] for s in review.plan.steps
             if isinstance(s, QmpCommand) and s.command == "blockdev-add"]
    assert files == given
    assert window.edits.undo_stack.count() == 1
    run(qtbot, aloop, window.close_session())


def test_a_delete_is_one_dialog(qtbot: Any, aloop: Any, window: MainWindow,
                                gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    asked = len(prompter.asked)
    select(window, "spare")
    window.act_delete.trigger()
    qtbot.waitUntil(lambda: "spare" not in window.scene.nodes and idle(window), timeout=10000)
    questions = prompter.asked[asked:]
    assert len(questions) == 1 and questions[0][0] == "confirm"
    (review,) = prompter.reviews
    assert review.destructive and review.action == "Delete"
    assert "spare-file" in review.consequences.freed
    assert "stay on disk" in questions[0][1]


def test_the_inspector_follows_the_selection(qtbot: Any, aloop: Any, window: MainWindow,
                                            gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "vm1-mid")
    assert window.inspector.key == "vm1-mid"
    window.scene.select([])
    assert window.inspector.key is None
    assert "Select a node" in window.inspector.text.toPlainText()
    window.scene.select(["vm1-mid", "base"])        # several: one of them
    assert window.inspector.key in ("vm1-mid", "base")


def test_a_new_connection_starts_without_the_old_jobs_log_and_errors(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.speed = 128 * 1024
    select(window, "vm1-top")
    window.act_stream.trigger()
    qtbot.waitUntil(lambda: window.jobs.state("stream-vm1-top") == "running", timeout=10000)
    window.show_error("an error of the old connection")
    old_entries = len(window.qmp_log.entries)
    (tmp_path / "next").mkdir()
    with started_peer("engine", tmp_path / "next") as other:
        assert run(qtbot, aloop, window.open_session(other.endpoint, "next"))
        assert window.jobs.rows == {} and window.jobs.placeholder.isVisible()
        assert window.marks.all_marks() == {}
        assert window.error_label.full_text() == ""
        log = window.qmp_log.entries
        assert log and len(log) < old_entries and log[0].kind == "greeting"
        assert all(e.seq <= window.bridge.session.traffic.last_seq for e in log)
        assert window.conn_label.text().startswith("● connected")
        run(qtbot, aloop, window.close_session())


def test_the_speed_limit_of_the_job_dialogs(qapp: Any) -> None:
    limit = SpeedLimit()
    assert limit.speed() == 0 and not limit.mib.isEnabled()
    limit.enabled.setChecked(True)
    limit.mib.setValue(3)
    assert limit.mib.isEnabled() and limit.speed() == 3 << 20


def test_the_stream_and_commit_dialogs_send_their_jobs_limited(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    window.editing.prompter = DialogPrompter(window)      # the real job dialogs
    titles: list[str] = []

    def limit_to_one_mib() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:                                  # not shown yet: next turn
            QTimer.singleShot(10, limit_to_one_mib)
            return
        limit = dialog.findChild(SpeedLimit)
        if limit is None or limit.mib.isEnabled():          # none offered, or not off
            titles.append(f"{dialog.windowTitle()}: no speed limit off by default")
            dialog.reject()
            return
        titles.append(dialog.windowTitle())
        limit.enabled.setChecked(True)
        limit.mib.setValue(1)
        box = dialog.findChild(QDialogButtonBox)
        box.button(QDialogButtonBox.StandardButton.Ok).click()

    for node, action, command in (("vm1-top", window.act_stream, "block-stream"),
                                  ("vm1-top", window.act_commit, "block-commit")):
        seq = window.bridge.session.traffic.last_seq
        select(window, node)
        QTimer.singleShot(0, limit_to_one_mib)
        action.trigger()                                    # returns once it is answered
        assert titles and titles[-1] in ("Stream into this node", "Commit down to…"), titles

        def sent(command: str = command, seq: int = seq) -> list[dict[str, Any]]:
            return [e.message["arguments"] for e in window.bridge.session.traffic
                    if e.seq > seq and e.direction == "sent"
                    and e.message.get("execute") == command]
        qtbot.waitUntil(lambda: bool(sent()), timeout=10000)
        (args,) = sent()
        assert args["speed"] == 1 << 20
        job = args["job-id"]
        qtbot.waitUntil(lambda job=job: window.jobs.state(job) != "", timeout=10000)
        if not window.jobs.rows[job].ended:
            window.jobs.rows[job].buttons["cancel"].click()
        qtbot.waitUntil(lambda job=job: idle(window) and window.jobs.rows[job].ended,
                        timeout=20000)
    assert titles == ["Stream into this node", "Commit down to…"]

"""Jobs in the real window: each state looks different, a cancel is no failure.

* A stream whose backing image fails to read (QEMU's ``blkdebug`` injects EIO) fails:
  the jobs dock shows it red with QEMU's error, the canvas keeps a red mark on the node
  the job worked on after QEMU's graph has dropped the job, and the edit says it failed.
* A stream started with a speed limit from the stream dialog runs long enough to be
  paused (amber), resumed and cancelled with the dock's buttons: cancelled is grey and
  said as a cancel, not reported as a failure.
* A completed stream is green, in the dock and on its node.
* An active commit another client started waits ready (teal) with Complete offered;
  Complete in the dock finishes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from gui.widgets.jobs import LOOKS
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter, run
from tests.gui.test_editor import open_demo
from tests.gui.test_edits import idle, select
from tests.support.peer import Peer, started_peer
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.gui


def chunk_color(window: MainWindow, job_id: str) -> str:
    sheet = window.jobs.rows[job_id].bar.styleSheet()
    return sheet.split("background:", 1)[1].split(";", 1)[0].strip()


def test_a_failed_job_is_red_with_qemus_error_in_the_dock_and_on_the_canvas(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    create(images / "base.qcow2", "4M")
    qemu_io(images / "base.qcow2", "write -P 0x11 0 2M")
    create(images / "top.qcow2", "4M", backing="base.qcow2", backing_fmt="qcow2")
    with started_peer("qsd", tmp_path) as peer:
        peer.ok("blockdev-add", {
            "driver": "qcow2", "node-name": "base", "read-only": True,
            "file": {"driver": "blkdebug", "node-name": "base-faulty",
                     "inject-error": [{"event": "read_aio", "errno": 5}],
                     "image": {"driver": "file", "filename": str(images / "base.qcow2")}}})
        peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "top", "backing": "base",
                                 "file": {"driver": "file",
                                          "filename": str(images / "top.qcow2")}})
        assert run(qtbot, aloop, window.open_session(peer.endpoint, peer.kind))
        qtbot.waitUntil(lambda: "top" in window.scene.nodes, timeout=10000)
        select(window, "top")
        window.act_stream.trigger()
        job = "stream-top"
        qtbot.waitUntil(lambda: window.jobs.state(job) == "failed" and idle(window),
                        timeout=20000)
        row = window.jobs.rows[job]
        assert row.error == "Input/output error"                       # QEMU's text
        assert row.item.text(2) == "failed: Input/output error"
        assert row.item.foreground(2).color() == QColor(LOOKS["failed"].color)
        assert chunk_color(window, job) == LOOKS["failed"].color
        assert row.bar.format().startswith("failed at")
        assert not any(b.isEnabled() for b in row.buttons.values())
        # the edit says it failed, with the same text
        prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
        assert any("Input/output error" in text for _t, text in prompter.errors), (
            prompter.errors, window.message_label.full_text())
        # QEMU's graph no longer has the job; the node it worked on keeps the mark
        qtbot.waitUntil(lambda: f"job:{job}" not in window.scene.snapshot.nodes,
                        timeout=10000)
        (mark,) = [m for m in window.marks.marks("top") if "failed" in m.text]
        assert mark.text == f"{job} failed: Input/output error"
        assert mark.color == LOOKS["failed"].color
        # until the job is cleared from the dock
        window.jobs.clear_finished()
        assert window.jobs.state(job) == "" and window.marks.marks("top") == []
        run(qtbot, aloop, window.close_session())


def test_a_limited_stream_pauses_resumes_and_cancels_without_being_called_a_failure(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.speed = 256 * 1024            # the stream dialog's speed limit
    select(window, "vm1-top")
    window.act_stream.trigger()
    job = "stream-vm1-top"
    qtbot.waitUntil(lambda: window.jobs.state(job) == "running", timeout=10000)
    sent = [e.message for e in window.bridge.session.traffic
            if e.direction == "sent" and e.message.get("execute") == "block-stream"]
    assert sent[-1]["arguments"]["speed"] == 256 * 1024
    row = window.jobs.rows[job]
    assert chunk_color(window, job) == LOOKS["running"].color
    qtbot.mouseClick(row.buttons["pause"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.jobs.state(job) == "paused", timeout=10000)
    assert chunk_color(window, job) == LOOKS["paused"].color
    assert row.buttons["resume"].isEnabled() and not row.buttons["pause"].isEnabled()
    # the job's card says so too
    qtbot.waitUntil(lambda: any(m.text == "paused" for m in window.marks.marks(f"job:{job}")),
                    timeout=10000)
    qtbot.mouseClick(row.buttons["resume"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.jobs.state(job) == "running", timeout=10000)
    qtbot.mouseClick(row.buttons["cancel"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.jobs.state(job) == "cancelled" and idle(window),
                    timeout=15000)
    assert row.item.text(2) == "cancelled"
    assert chunk_color(window, job) == LOOKS["cancelled"].color
    assert row.bar.format().startswith("cancelled at")
    assert prompter.errors == []                       # no failure dialog
    assert "Failed" not in window.error_label.full_text()
    assert window.message_label.full_text().startswith("cancelled:")
    # a grey mark, not a red one, on the node it streamed into
    marks = window.marks.marks("vm1-top")
    assert [m.color for m in marks if "cancelled" in m.text] == [LOOKS["cancelled"].color]
    assert window.scene.snapshot.backing("vm1-top") == "vm1-mid"     # nothing changed


def test_a_completed_job_is_green_in_the_dock_and_on_its_node(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    select(window, "vm3-top")
    window.act_stream.trigger()
    job = "stream-vm3-top"
    qtbot.waitUntil(lambda: window.jobs.state(job) == "completed" and idle(window),
                    timeout=20000)
    row = window.jobs.rows[job]
    assert row.item.text(2) == "completed" and row.bar.format() == "done"
    assert chunk_color(window, job) == LOOKS["completed"].color
    (mark,) = [m for m in window.marks.marks("vm3-top") if job in m.text]
    assert mark.text == f"{job} completed" and mark.color == LOOKS["completed"].color
    assert len({LOOKS[s].color for s in ("running", "paused", "failed", "cancelled")}) == 4


def test_a_ready_job_is_teal_with_complete_offered_and_completes_from_the_dock(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    create(images / "base.qcow2", "4M")
    create(images / "top.qcow2", "4M", backing="base.qcow2", backing_fmt="qcow2")
    qemu_io(images / "top.qcow2", "write -P 0x22 0 1M")
    with started_peer("qsd", tmp_path) as peer:
        peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "base", "file": {
            "driver": "file", "filename": str(images / "base.qcow2")}})
        peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "top", "backing": "base",
                                 "file": {"driver": "file",
                                          "filename": str(images / "top.qcow2")}})
        assert run(qtbot, aloop, window.open_session(peer.endpoint, peer.kind))
        qtbot.waitUntil(lambda: "top" in window.scene.nodes, timeout=10000)
        # another client commits the active layer: QEMU's job waits, ready, for a complete
        peer.ok("block-commit", {"job-id": "c1", "device": "top"})
        qtbot.waitUntil(lambda: window.jobs.state("c1") == "ready", timeout=20000)
        row = window.jobs.rows["c1"]
        assert row.item.text(2) == LOOKS["ready"].word
        assert chunk_color(window, "c1") == LOOKS["ready"].color
        assert row.buttons["complete"].isEnabled() and row.buttons["cancel"].isEnabled()
        assert len({LOOKS[s].color for s in
                    ("running", "paused", "ready", "failed", "cancelled", "completed")}) == 6
        qtbot.mouseClick(row.buttons["complete"], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.jobs.state("c1") == "completed", timeout=20000)
        assert chunk_color(window, "c1") == LOOKS["completed"].color
        assert peer.ok("query-jobs") == []                 # QEMU completed it
        qtbot.waitUntil(lambda: "job:c1" not in window.scene.snapshot.nodes, timeout=10000)
        run(qtbot, aloop, window.close_session())

"""The window follows a graph that changes behind its back, from events, with no timer.

A second client (the peer's other monitor) adds a chain — which no event reports — and
starts a stream on it: the job's events bring chain and job onto the canvas and into the
jobs dock; its progress is polled only while it runs; its end re-points the link. When
nothing changes, the session has nothing scheduled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from gui.window.connection import SAFETY_INTERVAL
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter, run
from tests.planner.test_links import add_by_reference, chain
from tests.support.peer import Peer
from tests.support.qemu import qemu_io

pytestmark = pytest.mark.gui


def test_window_follows_another_clients_job_by_events(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    window.connection.set_safety_interval(0)        # events only: no safety re-read
    assert run(qtbot, aloop, window.open_session(gui_peer.endpoint, gui_peer.kind))
    session = window.bridge.session
    assert session.poll_interval is None and session.poll_deadline is None
    files = chain(tmp_path)
    qemu_io(files["base"], "write -P 0x11 0 1M")
    add_by_reference(gui_peer.ok, files)
    gui_peer.ok("block-stream", {"job-id": "s0", "device": "top", "speed": 1})
    qtbot.waitUntil(lambda: "job:s0" in window.scene.nodes and "top" in window.scene.nodes,
                    timeout=10000)
    qtbot.waitUntil(lambda: window.jobs.progress("s0") >= 0, timeout=10000)
    assert session.poll_deadline is not None          # the job's progress is polled
    gui_peer.ok("block-job-set-speed", {"device": "s0", "speed": 0})
    qtbot.waitUntil(lambda: "job:s0" not in window.scene.nodes
                    and window.scene.snapshot.backing("top") is None, timeout=10000)
    qtbot.waitUntil(lambda: "s0" not in session.jobs, timeout=10000)
    assert session.poll_deadline is None              # nothing changes: nothing scheduled


def test_safety_interval_is_a_remembered_setting(qtbot: Any, aloop: Any, window: MainWindow,
                                                 gui_peer: Peer, tmp_path: Path) -> None:
    assert window.connection.safety_interval == SAFETY_INTERVAL
    assert run(qtbot, aloop, window.open_session(gui_peer.endpoint, gui_peer.kind))
    assert window.bridge.session.poll_interval == SAFETY_INTERVAL
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.choice = "every 5 min"
    window.act_safety.trigger()
    assert window.bridge.session.poll_interval == 300
    prompter.choice = "never"
    window.act_safety.trigger()
    assert window.bridge.session.poll_interval is None
    qtbot.waitUntil(lambda: window.bridge.session.poll_deadline is None, timeout=5000)
    window.settings.sync()
    reread = QSettings(window.settings.fileName(), QSettings.Format.IniFormat)
    assert int(reread.value("safety_interval")) == 0

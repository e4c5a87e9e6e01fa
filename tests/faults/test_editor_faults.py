"""The editor when its peer drops the connection, stalls or answers garbage mid-edit.

The real main window (offscreen) is connected to :class:`FaultyPeer` (the engine's real
bytes through a unix-socket proxy). An edit — making a node read-only — hits the fault.
The window must say what happened (status bar and banner: outcome unknown), must not
change the scene on a guess, must reconnect and show the real graph, and the same edit
must then work: the editor stays usable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.server.inprocess import InProcessServer
from gui.session import ConnectionStatus, Session
from gui.window import connection
from gui.window.main_window import MainWindow
from tests.faults.fake_peer import FaultyPeer
from tests.faults.support import check_intact
from tests.gui.conftest import ScriptedPrompter, aloop, run, window  # noqa: F401 - fixtures
from tests.support.qemu import create

pytestmark = pytest.mark.gui


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[FaultyPeer]:
    images = tmp_path / "images"
    images.mkdir()
    create(images / "disk.qcow2", 1 << 20)
    server = InProcessServer(root=images)
    fake = FaultyPeer(tmp_path / "peer.sock", server.connect)
    yield fake
    fake.close()
    server.close()


def _idle(win: MainWindow) -> bool:
    return win.bridge is not None and not win.bridge.busy and not win.edits.running


@pytest.mark.parametrize("mode", ["drop", "stall", "garbage"])
def test_editor_survives_a_misbehaving_peer(qtbot: Any, aloop: Any, window: MainWindow,  # noqa: F811
                                            peer: FaultyPeer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setattr(connection, "Session",
                        functools.partial(Session, command_timeout=30.0,
                                          reconnect_delays=(0.05, 0.2)))
    assert run(qtbot, aloop, window.open_remote(f"unix:{peer.path}"))
    run(qtbot, aloop, window.bridge.session.execute("blockdev-add", {
        "driver": "qcow2", "node-name": "disk",
        "file": {"driver": "file", "filename": str(tmp_path / "images" / "disk.qcow2")}}))
    qtbot.waitUntil(lambda: "disk" in window.scene.nodes, timeout=10000)
    assert not window.scene.snapshot.nodes["disk"].read_only

    # only the faulty edit runs under the short limit (replies that do come may take
    # more than 2 s on a busy machine); the stalled command's limit is taken when it
    # is sent, before the peer sees it, so it is restored once the peer has it
    peer.fault = (mode, "blockdev-reopen")
    window.bridge.session.command_timeout = 2.0
    window.action_toggle_ro("disk")
    qtbot.waitUntil(lambda: peer.triggered == 1, timeout=10000)
    window.bridge.session.command_timeout = 30.0
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    qtbot.waitUntil(lambda: bool(prompter.errors), timeout=15000)
    _title, text = prompter.errors[-1]
    assert "outcome unknown" in text, prompter.errors
    assert "outcome unknown" in window.error_label.toolTip() + window.message_label.text()
    # reconnected, graph re-read from the peer: the edit never reached it
    qtbot.waitUntil(lambda: window.connection_status is ConnectionStatus.CONNECTED
                    and _idle(window), timeout=15000)
    qtbot.waitUntil(lambda: window.scene.snapshot is not None
                    and "disk" in window.scene.snapshot.nodes, timeout=10000)
    assert not window.scene.snapshot.nodes["disk"].read_only
    assert window.banner.isHidden()

    # still usable: the same edit now goes through
    window.action_toggle_ro("disk")
    qtbot.waitUntil(lambda: _idle(window) and window.scene.snapshot.nodes["disk"].read_only,
                    timeout=15000)
    assert len(prompter.errors) == 1, prompter.errors
    run(qtbot, aloop, window.close_session())
    check_intact(tmp_path / "images" / "disk.qcow2")

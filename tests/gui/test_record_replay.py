"""Record and replay from the window's File menu.

File → Save session as script… writes the QMP the session sent (the demo's images
opened, a read-only toggle, a snapshot), with the replies, as JSON lines or qmp-shell;
File → Replay script… runs such a script on the peer the window is connected to, each
step shown in the Replay dock as it runs. On a fresh peer every step goes as recorded;
replayed again on the same peer, the first blockdev-add fails (the node exists) where the
recording succeeded: that step is marked and the replay stops there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gui.scripting.script import load_script
from gui.widgets.replay_panel import DIVERGED, OK, SKIPPED
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter, run
from tests.gui.test_editor import open_demo
from tests.gui.test_edits import idle, select
from tests.support.peer import Peer, started_peer

pytestmark = pytest.mark.gui


def record(qtbot: Any, aloop: Any, window: MainWindow, peer: Peer, tmp_path: Path) -> Path:
    open_demo(qtbot, aloop, window, peer, tmp_path)
    select(window, "spare")
    window.act_ro.trigger()
    qtbot.waitUntil(lambda: window.scene.snapshot.nodes["spare"].read_only and idle(window),
                    timeout=10000)
    select(window, "vm3-top")
    window.act_snapshot.trigger()
    qtbot.waitUntil(lambda: "vm3-top-snap1" in window.scene.nodes and idle(window),
                    timeout=15000)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.file = str(tmp_path / "session")          # no extension: .jsonl is added
    window.act_save_script.trigger()
    saved = tmp_path / "session.jsonl"
    assert saved.exists() and "saved" in window.message_label.full_text()
    return saved


def test_save_the_session_as_a_script_and_replay_it_step_by_step(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    saved = record(qtbot, aloop, window, gui_peer, tmp_path)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    sent = [m["execute"] for m in lines if "execute" in m]
    assert sent.count("blockdev-add") >= 6 and "blockdev-reopen" in sent
    assert "blockdev-snapshot" in sent and not any(c.startswith("query-") for c in sent)
    assert {"return": {}} in lines                   # the outcomes are kept
    script = load_script(saved)
    # the same session as qmp-shell lines
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.file = str(tmp_path / "session.qmp")
    window.act_save_script.trigger()
    shell = (tmp_path / "session.qmp").read_text().splitlines()
    assert shell[0].startswith("blockdev-add ") and len(
        [s for s in shell if not s.startswith("#")]) == len(script.commands)

    # on a fresh peer of the same kind: every step as recorded
    (tmp_path / "fresh").mkdir()
    with started_peer("engine" if gui_peer.kind == "bundled engine" else "qsd",
                      tmp_path / "fresh") as fresh:
        assert run(qtbot, aloop, window.open_session(fresh.endpoint, "fresh"))
        gui_peer.stop()           # it holds the images' locks: the fresh peer needs them
        prompter.file = str(saved)
        window.act_replay.trigger()
        panel = window.replay_panel
        qtbot.waitUntil(lambda: window.recording.task is not None
                        and window.recording.task.done(), timeout=30000)
        assert window.docks["replay"].isVisible()
        assert panel.states == [OK] * len(script.steps), [
            panel.tree.topLevelItem(i).text(3) for i in range(len(script.steps))]
        assert panel.tree.topLevelItem(0).text(0) == "✓"
        assert "All" in panel.title.text()
        qtbot.waitUntil(lambda: "vm3-top-snap1" in window.scene.nodes, timeout=10000)
        assert window.scene.snapshot.nodes["spare"].read_only

        # again on the same peer: the first blockdev-add diverges, the replay stops there
        window.act_replay.trigger()
        qtbot.waitUntil(lambda: window.recording.task.done(), timeout=30000)
        assert panel.states[0] == DIVERGED
        assert set(panel.states[1:]) == {SKIPPED}
        first = panel.tree.topLevelItem(0)
        assert first.text(0) == "✗"
        assert "Duplicate nodes with node-name='base-file'" in first.text(3)   # QEMU's text
        assert "the command succeeded when recorded" in first.text(3)
        assert "did not go as recorded" in window.error_label.full_text()
        run(qtbot, aloop, window.close_session())

"""Record and replay from the window: the QMP log saved as a script, a script replayed.

File → Save session as script… writes what this session sent and got back — the QMP
log's traffic, without the editor's own background queries — as a replayable script:
JSON lines (``.jsonl``, replies and job statuses kept, so a replay checks them) or
qmp-shell lines (``.qmp``). File → Replay script… runs a script on the peer the window is
connected to, shown step by step in the Replay dock; a step that does not go as
recorded is marked, and (unless the dock says to go on) the replay stops there. The
format and the replay are :mod:`gui.scripting`'s, the same the ``blockgraph replay``
command uses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.scripting.peer import PeerError, SessionPeer
from gui.scripting.replay import ReplayReport, StepReport, replay
from gui.scripting.script import Script, ScriptError, export_traffic, load_script
from gui.widgets.dialogs import Prompter
from gui.widgets.replay_panel import ReplayPanel
from gui.window.connection import WindowConnection
from gui.window.edits import EditController

SCRIPT_FILTER = "QMP script, JSON lines (*.jsonl);;qmp-shell lines (*.qmp);;All files (*)"


class RecordingController(QObject):
    """Save the session as a script; replay a script (see the module docstring)."""

    message = Signal(str)
    error = Signal(str)
    #: the replay dock should be shown
    showPanel = Signal()

    def __init__(self, connection: WindowConnection, edits: EditController,
                 prompter: Prompter, panel: ReplayPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.edits = edits
        self.prompter = prompter
        self.panel = panel
        self.task: asyncio.Task[Any] | None = None
        panel.stopRequested.connect(self.stop)

    # -- recording ----------------------------------------------------------------------
    def ask_save(self) -> None:
        path = self.prompter.save_file("Save session as script",
                                       str(Path.cwd() / "session.jsonl"), SCRIPT_FILTER)
        if path:
            self.save(path)

    def save(self, path: str) -> Script | None:
        """Write this session's traffic to ``path`` (qmp-shell for ``.qmp``, else JSON
        lines; a name without an extension gets ``.jsonl``)."""
        session = self.connection.session
        if session is None:
            self.error.emit("not connected: there is no session to save")
            return None
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".jsonl")
        try:
            script = export_traffic(session.traffic, target)
        except OSError as exc:
            self.error.emit(f"cannot save {target}: {exc.strerror or exc}")
            return None
        self.message.emit(f"saved {len(script.commands)} commands to {target}")
        return script

    # -- replaying ----------------------------------------------------------------------
    def ask_replay(self) -> None:
        path = self.prompter.open_file("Replay script", str(Path.cwd()), SCRIPT_FILTER)
        if path:
            self.start(path)

    def start(self, path: str) -> asyncio.Task[Any] | None:
        if self.task is not None and not self.task.done():
            self.error.emit("a replay is already running")
            return None
        self.task = self.connection.spawn(self.replay(path), "replay")
        return self.task

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def replay(self, path: str) -> ReplayReport | None:
        session = self.connection.session
        if session is None or not session.connected:
            self.error.emit("not connected: connect to a peer to replay a script on")
            return None
        try:
            script = load_script(path)
        except (OSError, ScriptError) as exc:
            self.error.emit(f"cannot read the script: {exc}")
            self.prompter.error("Cannot read the script", str(exc))
            return None
        self.showPanel.emit()
        self.panel.load(script, self.connection.address)
        peer = SessionPeer(session, owned=False)
        position = [0]

        def on_step(report: StepReport) -> None:
            self.panel.mark_done(position[0], report)
            position[0] += 1
            if position[0] < len(script.steps):
                self.panel.mark_running(position[0])

        if script.steps:
            self.panel.mark_running(0)
        report: ReplayReport | None = None
        try:
            report = await replay(script, peer, keep_going=self.panel.keep_going.isChecked(),
                                  on_step=on_step)
        except asyncio.CancelledError:
            self.panel.finish(f"Stopped after {position[0]} of {len(script.steps)} steps.")
            raise
        except PeerError as exc:
            self.panel.finish(f"The replay failed: {exc}")
            self.error.emit(f"replay failed: {exc}")
            return None
        finally:
            await peer.close()
            self.edits.reset("a replayed script changed the graph")
            session.request_refresh()
        bad = [s for s in report.steps if not s.ok]
        summary = (f"All {len(report.steps)} steps went as recorded." if report.ok else
                   f"{len(bad)} of {len(script.steps)} steps did not go as recorded"
                   + (" (stopped)" if report.stopped else "") + ".")
        self.panel.finish(summary)
        (self.message if report.ok else self.error).emit(f"replay: {summary}")
        return report

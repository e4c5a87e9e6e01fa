"""The editor's main window: the canvas, its docks and status bar, and the parts behind them.

The window is put together from parts, each in its own module:

* :mod:`~gui.window.actions` — every action, the menus, the toolbar, the context menu
  (:class:`~gui.window.actions.ActionsWindow`, which this window extends);
* :mod:`~gui.window.docks` — the inspector, jobs and QMP log docks;
* :mod:`~gui.window.connection` — the one session at a time (bundled engine or remote);
* :mod:`~gui.window.editing` — menu actions and gestures made into intents, and
  :mod:`~gui.window.edits` — intents planned, previewed, run and undone;
* :mod:`~gui.window.search` — finding a node by name or file;
* :mod:`~gui.window.staging` — edits collected and applied as one;
* :mod:`~gui.window.media` — drives with trays and their media;
* :mod:`~gui.window.jobs_view` — job states on the canvas;
* :mod:`~gui.window.recording` — the session saved as a script, scripts replayed.

This module shows what they report: snapshots go to the scene (as diffs), job progress
to the jobs dock, traffic to the QMP log, connection states to the status bar and the
banner over the canvas. Its public methods are the window's face for the start-up code
(:mod:`gui.window.app`), scripts and tests; most of them hand over to a part.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QPointF, QSettings, QTimer
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QApplication,
)

from engine.graph.snapshot import GraphSnapshot
from gui.session import ConnectionState, ConnectionStatus, Endpoint
from gui.session.peers import BundledPeer
from gui.views.export import export
from gui.views.minimap import Minimap
from gui.views.palette import DARK, LIGHT, SCHEMES, Scheme, qt_palette
from gui.views.scene import GraphScene
from gui.widgets.canvas_marks import CanvasMarks
from gui.widgets.dialogs import DialogPrompter, Prompter
from gui.widgets.perm_legend import PermissionLegend
from gui.widgets.window_size import restore_window
from gui.window.actions import ActionsWindow
from gui.window.bridge import SessionBridge
from gui.window.canvas import EditorCanvas
from gui.window.connection import WindowConnection
from gui.window.docks import build_docks
from gui.window.editing import EditingController
from gui.window.edits import EditController
from gui.window.jobs_view import JobMarks
from gui.window.media import MediaTracker
from gui.window.recording import RecordingController
from gui.window.search import NodeSearch
from gui.window.staging import StagingController
from gui.window.status import Banner, StatusLine

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


class MainWindow(ActionsWindow):
    def __init__(self, settings: QSettings | None = None, prompter: Prompter | None = None,
                 scheme: str | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("blockgraph", "blockgraph")
        self.setWindowTitle("blockgraph")
        icon = RESOURCES / "blockgraph.svg"
        if icon.exists():
            self.setWindowIcon(QIcon(str(icon)))
        self.scheme = SCHEMES.get(scheme or str(self.settings.value("scheme", "light")), LIGHT)
        self.scene = GraphScene(self.scheme, parent=self)
        self.marks = CanvasMarks(self)
        self.view = EditorCanvas(self.scene, self.marks)
        self.setCentralWidget(self.view)
        self.minimap = Minimap(self.view, self.view)
        self.banner = Banner(self.view)
        self.perm_legend = PermissionLegend(self.view)
        self.dialog_prompter = DialogPrompter(
            self, bool(self.settings.value("preview_plans", True, type=bool)))
        self.dialog_prompter.on_preview_disabled = lambda: self.act_preview.setChecked(False)
        self.prompter: Prompter = prompter or self.dialog_prompter
        self.connection = WindowConnection(self.settings, self)
        self.edits = EditController(self.connection, self.prompter, self)
        self.staging = StagingController(self.connection, self.edits, self.marks, self)
        self.media = MediaTracker(self.marks, self)
        self.editing = EditingController(self.scene, self.view, self.connection, self.edits,
                                         self.prompter, self, staging=self.staging,
                                         media=self.media)
        self.search = NodeSearch(self.scene, self.view, self)
        parts = build_docks(self)
        self.inspector, self.jobs, self.qmp_log = parts.inspector, parts.jobs, parts.qmp_log
        self.staging_panel, self.replay_panel = parts.staging, parts.replay
        self.docks = parts.docks
        self.job_marks = JobMarks(self.marks, self.jobs, self)
        self.edits.started.connect(self.job_marks.plan_started)
        self.recording = RecordingController(self.connection, self.edits, self.prompter,
                                             self.replay_panel, self)
        self._build_status()
        self.build_actions()
        self.act_dark.setChecked(self.scheme is DARK)
        self._wire()
        self.apply_scheme(self.scheme)
        self._restore_geometry()
        #: the session was connected before (a CONNECTED now is a reconnection)
        self._connected_once = False
        self.set_status(ConnectionState(ConnectionStatus.DISCONNECTED, "", "not connected"))

    # -- construction -------------------------------------------------------------------
    def _build_status(self) -> None:
        self.status_line = StatusLine(self.statusBar())
        s = self.status_line
        self.conn_label, self.peer_label = s.conn_label, s.peer_label
        self.error_label, self.message_label = s.error_label, s.message_label
        self.unmodelled_label = s.unmodelled_label
        #: the options of an opened QEMU command line that blockgraph does not model
        self.unmodelled_options: list[str] = []

    def _wire(self) -> None:
        """Connect the parts' signals to what shows them."""
        v, e = self.view, self.editing
        v.drop_validator = e.validate_drop
        v.rebaseRequested.connect(e.rebase)
        v.detachRequested.connect(e.drop_detach)
        v.dropRefused.connect(lambda reason: self.show_error(f"refused: {reason}"))
        v.statusMessage.connect(self.show_message)
        v.nodeActivated.connect(self._activate_and_inspect)
        v.contextMenuRequested.connect(self.context_menu)
        v.viewportChanged.connect(self._place_overlays)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.snapshotShown.connect(self._snapshot_shown)
        self.banner.button.clicked.connect(self.connection.reconnect)
        self.jobs.verbRequested.connect(e.job_verb)
        for part in (e, self.search, self.staging, self.recording):
            part.message.connect(self.show_message)
            part.error.connect(self.show_error)
        self.scene.snapshotShown.connect(lambda _diff: self.job_marks.graph_shown(
            self.scene.snapshot))
        self._wire_staging()
        self.act_perms.toggled.connect(self._show_legend)
        self.recording.showPanel.connect(self._show_replay_panel)
        self.media.changed.connect(lambda: setattr(self.edits, "labels", self.media.labels()))
        self.edits.executed.connect(lambda _report: self.media.refresh())
        c = self.connection
        c.sessionOpened.connect(self._session_opened)
        c.connected.connect(self._connected)
        c.sessionClosed.connect(self._session_closed)
        c.demoOpened.connect(self.relayout)
        c.error.connect(self._connection_error)
        c.failed.connect(self._on_failed)
        c.message.connect(self.show_message)
        c.recentChanged.connect(self.fill_recent)
        c.unmodelled.connect(self.show_unmodelled)
        self.edits.status.connect(self.show_message)
        self.edits.failed.connect(self._edit_failed)
        self.edits.succeeded.connect(self.clear_error)
        self.edits.runningChanged.connect(lambda _on: self.update_undo_actions())
        stack = self.edits.undo_stack
        stack.indexChanged.connect(self._undo_changed)
        stack.cleanChanged.connect(self._undo_changed)

    def _show_legend(self, on: bool) -> None:
        self.perm_legend.setVisible(on)
        self._place_overlays()

    def _activate_and_inspect(self, key: str) -> None:
        """A double-click: unfold a folded chain, or else inspect the node."""
        if not self.view_controls.activate(key):
            self.inspect(key)

    def _show_replay_panel(self) -> None:
        self.docks["replay"].show()
        self.docks["replay"].raise_()

    def _undo_changed(self, *_: object) -> None:
        # the stack also signals while it is being destroyed with the window
        if shiboken6.isValid(self.edits.undo_stack):
            self.update_undo_actions()

    def _wire_staging(self) -> None:
        st, panel = self.staging, self.staging_panel
        panel.modeToggled.connect(self.act_stage.setChecked)
        panel.removeRequested.connect(st.remove)
        panel.discardRequested.connect(st.clear)
        panel.applyRequested.connect(self.apply_staged)
        st.modeChanged.connect(panel.set_mode)
        st.modeChanged.connect(self._staging_shown)
        st.changed.connect(lambda: panel.show_items(st.describe_items(), st.refused_index,
                                                    st.refused_reason))
        st.changed.connect(lambda: self._staging_shown(st.enabled))

    def _staging_shown(self, on: bool) -> None:
        """The Staged edits dock comes while staging (or edits wait) and goes after."""
        dock = self.docks["staging"]
        if on or self.staging.items:
            dock.show()
            dock.raise_()
        else:
            dock.hide()
        self.act_apply_staged.setEnabled(bool(self.staging.items))
        self.act_discard_staged.setEnabled(bool(self.staging.items))

    def apply_staged(self) -> None:
        self.spawn(self.staging.apply(), "apply the staged edits")

    # -- settings -----------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        restore_window(self, self.settings)

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.settings.setValue("scheme", self.scheme.name)
        self.settings.setValue("preview_plans", self.dialog_prompter.preview_enabled)
        self.settings.sync()

    def set_preview(self, on: bool) -> None:
        self.dialog_prompter.preview_enabled = on
        self.settings.setValue("preview_plans", on)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        super().closeEvent(event)

    # -- presentation -------------------------------------------------------------------
    def apply_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.setPalette(qt_palette(scheme))
        self.setPalette(qt_palette(scheme))
        self.scene.set_scheme(scheme)
        self.minimap.rebuild()

    def set_dark(self, on: bool) -> None:
        self.apply_scheme(DARK if on else LIGHT)
        self.settings.setValue("scheme", self.scheme.name)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._place_overlays()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._place_overlays)

    def _place_overlays(self) -> None:
        vp = self.view.viewport().geometry()
        self.minimap.move(vp.right() - self.minimap.width() - 12,
                          vp.bottom() - self.minimap.height() - 12)
        self.minimap.raise_()
        width = min(640, vp.width() - 40)
        self.banner.setFixedWidth(max(200, width))
        self.banner.adjustSize()
        self.banner.move(vp.left() + (vp.width() - self.banner.width()) // 2, vp.top() + 12)
        self.banner.raise_()
        legend = getattr(self, "perm_legend", None)
        if legend is not None:
            legend.adjustSize()
            legend.move(vp.left() + 12, vp.bottom() - legend.height() - 12)
            legend.raise_()

    def show_message(self, text: str) -> None:
        self.status_line.show_message(text)

    def show_unmodelled(self, options: list[str]) -> None:
        """Name the options of an opened command line that the graph does not show."""
        self.unmodelled_options = list(options)
        self.status_line.show_unmodelled(options)

    def show_error(self, text: str) -> None:
        self.status_line.show_error(text)

    def clear_error(self) -> None:
        self.status_line.clear_error()

    def _connection_error(self, title: str, text: str) -> None:
        self.show_error(text)
        self.prompter.error(title, text)

    def _edit_failed(self, title: str, text: str) -> None:
        self.show_error(f"{title}: {text}")
        self.prompter.error(title, text)

    def set_status(self, state: ConnectionState) -> None:
        status = state.status
        self.status_line.show_connection(state)
        if status is ConnectionStatus.LOST:
            self.banner.label.setText(state.message or "Disconnected — outcome unknown")
            self.banner.show()
            self.show_error(state.message)
        elif status is ConnectionStatus.CONNECTED:
            self.banner.hide()
            self.clear_error()
            if self._connected_once:   # a reconnection: the peer may be another process
                self.edits.reset("reconnected — the peer may have been restarted")
            self._connected_once = True
        self._place_overlays()
        self.update_node_actions()
        self.update_undo_actions()

    # -- the graph ----------------------------------------------------------------------
    def show_snapshot(self, snapshot: GraphSnapshot) -> None:
        self.scene.show_snapshot(snapshot)

    def _snapshot_shown(self, diff: Any) -> None:
        snap = self.scene.snapshot
        if snap is None:
            return
        if diff is None or diff.added_nodes or diff.removed_nodes:
            self.search.set_graph(snap)
        if diff is not None:
            for key in diff.added_nodes:
                pos = self.editing.take_position(key)
                if pos is not None and key in self.scene.nodes:
                    # where the user asked, or the free place nearest, with its chain
                    self.scene.place_near(key, pos.x(), pos.y(), diff.added_nodes)
        self.view.update_scene_rect()
        key = self.inspector.key
        self.inspector.show_node(snap, key if key in snap.nodes else None)
        self.update_node_actions()

    def relayout(self, animate: bool = False) -> None:
        """Lay everything out again for the canvas's shape and fit it; asked for by
        the user (``animate``), the cards glide to their new places first."""
        vp = self.view.viewport()
        if vp.width() > 50 and vp.height() > 50:
            self.scene.aspect = vp.width() / vp.height()
        if not animate or self.scene.shown is None:
            self.scene.relayout()
            self.view.fit()
            return
        self.scene.relaidOut.connect(self._fit_after_relayout)
        self.scene.relayout(animate=True)

    def _fit_after_relayout(self) -> None:
        self.scene.relaidOut.disconnect(self._fit_after_relayout)
        self.view.fit()

    def _selection_changed(self) -> None:
        """The inspector follows the selection: the (first) selected node, or nothing
        once the selection is cleared."""
        key = self.view.selected_key()
        selected = self.scene.selected_keys()
        if key is not None:
            self.inspector.show_node(self.scene.snapshot, key)
        elif self.inspector.key not in selected:
            self.inspector.show_node(None, None)
        self.update_node_actions()

    def inspect(self, key: str) -> None:
        self.inspector.show_node(self.scene.snapshot, key)
        self.docks["inspector"].show()
        self.docks["inspector"].raise_()

    def export_to(self, path: str) -> None:
        try:
            written = export(self.scene, path)
        except (OSError, ValueError) as exc:
            self.show_error(str(exc))
            return
        if len(written) > 1:
            self.show_message(f"exported {path}: too big for one legible picture, an "
                              f"overview and {len(written) - 1} pages beside it")
        else:
            self.show_message(f"exported {path}")

    # -- the session --------------------------------------------------------------------
    def _session_opened(self, bridge: SessionBridge, label: str) -> None:
        """A new session is up: what the last one showed (jobs, log, errors, undo) goes."""
        self.jobs.clear_all()
        self.qmp_log.clear()
        self.clear_error()
        for entry in bridge.session.traffic:
            self.qmp_log.add(entry)
        for job in bridge.session.jobs.values():
            self.jobs.update_job(job)
        bridge.graphChanged.connect(self.show_snapshot)
        bridge.jobProgress.connect(self.jobs.update_job)
        bridge.connectionState.connect(self.set_status)
        bridge.traffic.connect(self.qmp_log.add)
        bridge.busyChanged.connect(lambda _busy: self.update_node_actions())
        self.edits.reset()
        self.staging.clear()
        self.job_marks.clear()
        self.media.attach(bridge)
        self._connected_once = False
        self.set_status(bridge.session.state)
        self.setWindowTitle(f"blockgraph — {label}")

    def _connected(self, snapshot: GraphSnapshot) -> None:
        self.show_snapshot(snapshot)
        self.view.fit()

    def _session_closed(self) -> None:
        self.scene.reset()
        self.inspector.show_node(None, None)
        self.peer_label.setText("")
        self.media.detach()

    def _on_failed(self, what: str, exc: object) -> None:
        self.show_error(f"{what} failed: {exc}")

    # -- the window's face: each hands over to a part ------------------------------------
    @property
    def bridge(self) -> SessionBridge | None:
        return self.connection.bridge

    @property
    def connection_status(self) -> ConnectionStatus:
        return self.connection.status

    def spawn(self, coro: Any, what: str) -> Any:
        return self.connection.spawn(coro, what)

    async def open_session(self, endpoint: Endpoint, label: str,
                           bundled: BundledPeer | None = None) -> bool:
        return await self.connection.open_session(endpoint, label, bundled)

    async def close_teaching(self) -> None:
        """Close what the tour windows this window opened still run (their engines and
        scratch images)."""
        for other in getattr(self, "teaching_windows", []):
            panel = getattr(other, "panel", None)
            if panel is not None:
                await panel.shutdown()

    def abandon_teaching(self) -> None:
        """:meth:`close_teaching` without awaiting (Qt's loop has ended by itself)."""
        for other in getattr(self, "teaching_windows", []):
            panel = getattr(other, "panel", None)
            if panel is not None:
                panel.abandon()

    async def open_bundled(self, demo_dir: Path | None = None, demo: bool = True) -> bool:
        return await self.connection.open_bundled(demo_dir, demo)

    async def open_remote(self, address: str) -> bool:
        return await self.connection.open_remote(address)

    async def close_session(self) -> None:
        await self.connection.close_session()

    def abandon_session(self) -> None:
        self.connection.abandon_session()

    def refresh(self) -> None:
        self.connection.refresh()

    def recent(self) -> list[str]:
        return self.connection.recent()

    def find_node(self, text: str) -> str | None:
        return self.search.find(text)

    def selected_node(self) -> str | None:
        return self.editing.selected_node()

    def validate_drop(self, parent: str, target: str | None) -> tuple[bool, str]:
        return self.editing.validate_drop(parent, target)

    def request(self, intent: Any) -> None:
        self.editing.request(intent)

    def open_image(self, path: str, at: QPointF | None = None) -> None:
        self.editing.open_image(path, at)

    def open_images(self, paths: list[str]) -> None:
        self.editing.open_images(paths)

    def copy_as_qmp_text(self, key: str) -> str:
        return self.editing.copy_as_qmp_text(key)

    def action_toggle_ro(self, key: str | None = None) -> None:
        self.editing.toggle_read_only(key)

    def action_delete(self, key: str | None = None) -> None:
        self.editing.delete(key)

    def undo(self) -> None:
        self.editing.undo()

    def redo(self) -> None:
        self.editing.redo()

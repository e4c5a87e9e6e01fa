"""The editor's main window: canvas, docks, menus, status bar; one session at a time.

The window owns the current :class:`~gui.session.Session` (through a
:class:`~gui.qt_session.SessionBridge`) and renders what it reports: snapshots go
to the scene (as diffs), job progress to the jobs dock, traffic to the QMP log,
connection states to the status bar and the banner over the canvas. User
actions become planner intents handed to the :class:`~gui.edits.EditController`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QPointF, QSettings, QSize, QStringListModel, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QIcon, QKeySequence, QScreen
from PySide6.QtWidgets import (
    QApplication,
    QCompleter,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolBar,
    QWidget,
)

from engine.graph.snapshot import GraphSnapshot
from gui.edits import EditController, reasons_text
from gui.peers import BundledPeer, remote_endpoint
from gui.planner import check_intent
from gui.planner.intents import (
    AddImage,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.options import current_options
from gui.qt_session import SessionBridge
from gui.session import (
    ConnectFailed,
    ConnectionState,
    ConnectionStatus,
    Endpoint,
    Session,
    SessionError,
)
from gui.views.canvas import GraphCanvas
from gui.views.minimap import Minimap
from gui.views.palette import DARK, LIGHT, SCHEMES, qt_palette
from gui.views.scene import GraphScene
from gui.views.view_controls import ViewControls
from gui.widgets.dialogs import ConnectDialog, DialogPrompter, Prompter
from gui.widgets.inspector import Inspector
from gui.widgets.jobs import JobsPanel
from gui.widgets.qmp_log import QmpLog

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
MAX_RECENT = 8


class Banner(QFrame):
    """A strip over the canvas for the disconnected state, with a Reconnect button."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.button = QPushButton("Reconnect")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        self.setStyleSheet("#banner { background: #c62828; border-radius: 6px; }"
                           "#banner QLabel { color: white; font-weight: bold; }")
        self.hide()


def default_size(screen: QScreen | None) -> QSize:
    """The first run's window size: 1400x900, but never larger than 90% of the screen
    (on a 1280x800 laptop a 1400x900 window opened with its edges off-screen)."""
    want = QSize(1400, 900)
    if screen is None:
        return want
    room = screen.availableGeometry().size() * 0.9
    return want.boundedTo(room)


class MainWindow(QMainWindow):
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
        self.view = GraphCanvas(self.scene)
        self.view.drop_validator = self.validate_drop
        self.setCentralWidget(self.view)
        self.minimap = Minimap(self.view, self.view)
        self.banner = Banner(self.view)
        self.banner.button.clicked.connect(self.reconnect)
        self.bridge: SessionBridge | None = None
        self.bundled: BundledPeer | None = None
        self.address = ""
        self._pending_positions: dict[str, QPointF] = {}
        self._search_index = 0
        self._search_text = ""
        self._background: set[Any] = set()
        self.dialog_prompter = DialogPrompter(
            self, bool(self.settings.value("preview_plans", True, type=bool)))
        self.dialog_prompter.on_preview_disabled = self._preview_disabled
        self.prompter: Prompter = prompter or self.dialog_prompter
        self.edits: EditController | None = None
        self._build_docks()
        self._build_status()
        self._build_actions()
        self._wire_view()
        self.apply_scheme(self.scheme)
        self._restore_geometry()
        self.set_status(ConnectionState(ConnectionStatus.DISCONNECTED, "", "not connected"))

    # -- construction -------------------------------------------------------------------
    def _build_docks(self) -> None:
        self.inspector = Inspector()
        self.jobs = JobsPanel()
        self.qmp_log = QmpLog()
        self.jobs.verbRequested.connect(self.job_verb)
        self.docks: dict[str, QDockWidget] = {}
        for name, title, widget, area in (
            ("inspector", "Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea),
            ("jobs", "Jobs", self.jobs, Qt.DockWidgetArea.BottomDockWidgetArea),
            ("log", "QMP log", self.qmp_log, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{name}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.tabifyDockWidget(self.docks["jobs"], self.docks["log"])
        self.docks["jobs"].raise_()
        self.resizeDocks([self.docks["jobs"]], [190], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["inspector"]], [330], Qt.Orientation.Horizontal)

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.conn_label = QLabel()
        self.peer_label = QLabel()
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #c62828;")
        self.message_label = QLabel()
        bar.addWidget(self.message_label, 1)
        bar.addPermanentWidget(self.error_label)
        bar.addPermanentWidget(self.peer_label)
        bar.addPermanentWidget(self.conn_label)

    def _action(self, text: str, slot: Any, shortcut: str | QKeySequence.StandardKey | None
                = None, tip: str = "", checkable: bool = False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setToolTip(tip + (f" ({act.shortcut().toString()})" if shortcut else ""))
            act.setStatusTip(tip)
        act.setCheckable(checkable)
        if checkable:
            act.toggled.connect(slot)
        else:
            act.triggered.connect(lambda _=False: slot())
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        a = self._action
        self.act_connect = a("&Connect to QEMU…", self.ask_connect, "Ctrl+K",
                             "Connect to a QEMU or qemu-storage-daemon QMP socket")
        self.act_demo = a("Open &demo (bundled engine)", self.open_demo, None,
                          "The bundled engine with demo disk chains")
        self.act_open = a("&Open image…", self.ask_open_image, QKeySequence.StandardKey.Open,
                          "Open an image file (and its backing chain) as a new node")
        self.act_export = a("&Export…", self.ask_export, "Ctrl+E",
                            "Save the graph as SVG, PNG, DOT or JSON")
        self.act_disconnect = a("&Disconnect", self.disconnect, None, "Close the connection")
        # StandardKey.Quit is empty on some platforms
        self.act_quit = a("&Quit", self.close, "Ctrl+Q")
        self.act_snapshot = a("&Snapshot…", self.action_snapshot, "Ctrl+Shift+S",
                              "Create a qcow2 overlay on top of the selected node")
        self.act_stream = a("S&tream into this node…", self.action_stream, "Ctrl+Shift+T",
                            "Copy data from the backing chain into the selected node")
        self.act_commit = a("&Commit down to…", self.action_commit, "Ctrl+Shift+M",
                            "Write the selected node's data down into a base")
        self.act_delete = a("&Delete node", self.action_delete, QKeySequence.StandardKey.Delete,
                            "blockdev-del the selected node")
        self.act_ro = a("Toggle &read-only", self.action_toggle_ro, "Ctrl+R",
                        "Reopen the selected node read-only / read-write")
        self.act_detach = a("Detac&h backing", self.action_detach, "Ctrl+Shift+D",
                            "Drop the selected node's backing link")
        self.act_select_all = a("Select &all nodes", self.select_all_nodes,
                                QKeySequence.StandardKey.SelectAll,
                                "Select every node on the canvas")
        self.act_copy_qmp = a("Copy as &QMP", self.action_copy_qmp, "Ctrl+Shift+C",
                              "Copy blockdev-add arguments that re-create the selected node")
        self.act_fit = a("&Fit to window", self.view.fit, "F", "Show the whole graph")
        self.act_zoom_in = a("Zoom &in", lambda: self.view.zoom_by(1.25),
                             QKeySequence.StandardKey.ZoomIn)
        self.act_zoom_out = a("Zoom &out", lambda: self.view.zoom_by(0.8),
                              QKeySequence.StandardKey.ZoomOut)
        self.act_zoom_reset = a("&Actual size", self.view.reset_zoom, "Ctrl+0")
        self.act_relayout = a("Re-&layout", self.relayout, "Ctrl+L",
                              "Lay out every node again")
        self.act_refresh = a("&Refresh", self.refresh, QKeySequence.StandardKey.Refresh,
                             "Re-read the graph from the peer")
        self.act_search = a("&Find node…", self.focus_search, QKeySequence.StandardKey.Find)
        self.act_perms = a("Show &permissions", self.scene.set_show_permissions, "Ctrl+P",
                           "Label every link with its permissions (perm / shared)",
                           checkable=True)
        self.act_dark = a("&Dark theme", self.set_dark, "Ctrl+Shift+L", checkable=True)
        self.act_dark.setChecked(self.scheme is DARK)
        self.act_preview = a("&Preview plans before executing", self._set_preview, None,
                             "Show the QMP a change will send, before sending it",
                             checkable=True)
        self.act_preview.setChecked(self.dialog_prompter.preview_enabled)
        self.act_undo = a("&Undo", self.undo, QKeySequence.StandardKey.Undo,
                          "Undo the last edit")
        # Redo's standard key depends on the platform (Ctrl+Y or Ctrl+Shift+Z): bind both
        self.act_redo = a("&Redo", self.redo, "Ctrl+Shift+Z", "Redo the edit just undone")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        self.act_about = a("&About blockgraph", self.about)
        self.act_shortcuts = a("&Keyboard and mouse", self.show_shortcuts, "F1")

        mb = self.menuBar()
        m = mb.addMenu("&File")
        for act in (self.act_connect, self.act_demo, self.act_open):
            m.addAction(act)
        self.recent_menu = m.addMenu("Recent connections")
        self._fill_recent()
        m.addSeparator()
        m.addAction(self.act_export)
        m.addSeparator()
        m.addAction(self.act_disconnect)
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for act in (self.act_undo, self.act_redo, None, self.act_snapshot, self.act_stream,
                    self.act_commit, self.act_delete, self.act_ro, self.act_detach, None,
                    self.act_select_all, self.act_copy_qmp, None, self.act_preview):
            m.addSeparator() if act is None else m.addAction(act)
        m = view_menu = mb.addMenu("&View")
        for act in (self.act_fit, self.act_zoom_in, self.act_zoom_out, self.act_zoom_reset,
                    self.act_relayout, self.act_refresh, None, self.act_search, self.act_perms,
                    self.act_dark):
            m.addSeparator() if act is None else m.addAction(act)
        docks_menu = m.addMenu("&Docks")
        for dock in self.docks.values():
            docks_menu.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addAction(self.act_about)

        tb = QToolBar("Main", self)
        tb.setObjectName("toolbar-main")
        tb.setMovable(False)
        for act in (self.act_connect, self.act_open, None, self.act_undo, self.act_redo, None,
                    self.act_snapshot, self.act_stream, self.act_commit, self.act_delete, None,
                    self.act_fit, self.act_relayout, self.act_perms):
            tb.addSeparator() if act is None else tb.addAction(act)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find node (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(240)
        self.search.setToolTip("Type part of a node name; Enter jumps to the next match")
        self.completer_model = QStringListModel()
        completer = QCompleter(self.completer_model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.search.setCompleter(completer)
        completer.activated.connect(lambda text: self.find_node(text))
        self.search.returnPressed.connect(lambda: self.find_node(self.search.text()))
        spacer = QWidget()
        spacer.setSizePolicy(spacer.sizePolicy().horizontalPolicy().Expanding,
                             spacer.sizePolicy().verticalPolicy())
        tb.addWidget(spacer)
        self.view_controls = ViewControls(self.scene, self.view, self.minimap, self.settings,
                                          self, self.show_message)
        self.view_controls.install(view_menu, tb)
        tb.addWidget(self.search)
        self.addToolBar(tb)
        from gui.teaching import install_teaching

        self.teaching_actions = install_teaching(self)
        self.node_actions = [self.act_snapshot, self.act_stream, self.act_commit,
                             self.act_delete, self.act_ro, self.act_detach, self.act_copy_qmp]
        self._update_node_actions()

    def _wire_view(self) -> None:
        v = self.view
        v.rebaseRequested.connect(lambda p, c: self.request(SetBacking(p, c)))
        v.detachRequested.connect(self.confirm_detach)
        v.dropRefused.connect(lambda reason: self.show_error(f"refused: {reason}"))
        v.statusMessage.connect(self.show_message)
        v.nodeActivated.connect(
            lambda key: self.view_controls.activate(key) or self.inspect(key))
        v.contextMenuRequested.connect(self.context_menu)
        v.viewportChanged.connect(self._place_overlays)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.snapshotShown.connect(self._snapshot_shown)

    # -- settings -----------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geo = self.settings.value("geometry")
        if isinstance(geo, QByteArray | bytes) and geo:
            self.restoreGeometry(QByteArray(geo))
        else:
            self.resize(default_size(QGuiApplication.primaryScreen()))
        state = self.settings.value("windowState")
        if isinstance(state, QByteArray | bytes) and state:
            self.restoreState(QByteArray(state))

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.settings.setValue("scheme", self.scheme.name)
        self.settings.setValue("preview_plans", self.dialog_prompter.preview_enabled)
        self.settings.sync()

    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, address: str) -> None:
        items = [address, *[r for r in self.recent() if r != address]][:MAX_RECENT]
        self.settings.setValue("recent", items)
        self.settings.sync()
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent()
        for address in recent:
            act = self.recent_menu.addAction(address)
            act.triggered.connect(lambda _=False, a=address: self.connect_to(a))
        self.recent_menu.setEnabled(bool(recent))

    def _set_preview(self, on: bool) -> None:
        self.dialog_prompter.preview_enabled = on
        self.settings.setValue("preview_plans", on)

    def _preview_disabled(self) -> None:
        self.act_preview.setChecked(False)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        super().closeEvent(event)

    # -- presentation -------------------------------------------------------------------
    def apply_scheme(self, scheme: Any) -> None:
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

    def show_message(self, text: str) -> None:
        self.message_label.setText(text)

    def show_error(self, text: str) -> None:
        self.error_label.setText(text[:160])
        self.error_label.setToolTip(text)
        self.message_label.setText(text)

    def set_status(self, state: ConnectionState) -> None:
        status = state.status
        text = {ConnectionStatus.CONNECTED: "● connected",
                ConnectionStatus.CONNECTING: "◌ connecting…",
                ConnectionStatus.LOST: "○ disconnected",
                ConnectionStatus.DISCONNECTED: "○ not connected",
                ConnectionStatus.CLOSED: "○ closed"}[status]
        where = f" — {state.address}" if state.address else ""
        self.conn_label.setText(text + where)
        self.conn_label.setToolTip(state.message)
        color = {"connected": "#1f9d55", "connecting": "#c9761a"}.get(status.value, "#c62828")
        self.conn_label.setStyleSheet(f"color: {color}; font-weight: bold;")
        peer = state.peer
        if peer is not None:
            self.peer_label.setText(f"QEMU {peer.version_text}")
        if status is ConnectionStatus.LOST:
            self.banner.label.setText(state.message or "Disconnected — outcome unknown")
            self.banner.show()
            self.show_error(state.message)
        elif status is ConnectionStatus.CONNECTED:
            self.banner.hide()
        self._place_overlays()
        self._update_node_actions()

    @property
    def connection_status(self) -> ConnectionStatus:
        if self.bridge is None:
            return ConnectionStatus.DISCONNECTED
        return self.bridge.session.state.status

    # -- sessions -----------------------------------------------------------------------
    def spawn(self, coro: Any, what: str) -> Any:
        if self.bridge is not None:
            return self.bridge.spawn(coro, what)
        import asyncio

        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: Any) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._on_failed(what, t.exception())

        task.add_done_callback(done)
        return task

    async def open_session(self, endpoint: Endpoint, label: str,
                           bundled: BundledPeer | None = None) -> bool:
        """Close the current session and connect to ``endpoint``; True when connected."""
        await self.close_session()
        session = Session(endpoint, poll_interval=1.0)
        bridge = SessionBridge(session, self)
        bridge.graphChanged.connect(self.show_snapshot)
        bridge.jobProgress.connect(self.jobs.update_job)
        bridge.connectionState.connect(self.set_status)
        bridge.traffic.connect(self.qmp_log.add)
        bridge.failed.connect(self._on_failed)
        bridge.busyChanged.connect(self._busy_changed)
        self.bridge = bridge
        self.bundled = bundled
        self.address = label
        if self.edits is None:
            self.edits = EditController(bridge, self.prompter, self)
            self.edits.status.connect(self.show_message)
            self.edits.failed.connect(self._edit_failed)
            self.edits.undo_stack.canUndoChanged.connect(self.act_undo.setEnabled)
            self.edits.undo_stack.canRedoChanged.connect(self.act_redo.setEnabled)
            self.edits.undo_stack.undoTextChanged.connect(self._undo_text)
            self.edits.undo_stack.redoTextChanged.connect(self._redo_text)
        else:
            self.edits.set_bridge(bridge)
        self.setWindowTitle(f"blockgraph — {label}")
        try:
            snapshot = await session.connect()
        except ConnectFailed as exc:
            self.show_error(str(exc))
            self.prompter.error("Cannot connect", str(exc))
            return False
        self.show_snapshot(snapshot)
        self.view.fit()
        return True

    def abandon_session(self) -> None:
        """Drop the session without waiting for anything (no event loop is left to
        wait on): the bundled engine still closes its images; a remote peer sees the
        socket close when the process ends."""
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.detach()
        if self.bundled is not None:
            self.bundled.close()
            self.bundled = None

    async def close_session(self) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.detach()
            await bridge.session.close()
        if self.bundled is not None:
            self.bundled.close()
            self.bundled = None
        self.scene.reset()
        self.inspector.show_node(None, None)
        self.peer_label.setText("")

    async def open_bundled(self, demo_dir: Path | None = None, demo: bool = True) -> bool:
        """The bundled engine, with the demo chains unless ``demo`` is False."""
        bundled = BundledPeer()
        if not await self.open_session(bundled.endpoint, "bundled engine", bundled):
            return False
        if demo:
            from gui.demo import build_demo

            assert self.bridge is not None
            await build_demo(self.bridge.session, demo_dir)
            self.scene.relayout()
            self.view.fit()
        self.show_message("bundled engine with the demo chains — drag a backing arrow's end "
                          "onto another node to rebase it" if demo else "bundled engine")
        return True

    async def open_remote(self, address: str) -> bool:
        try:
            endpoint = remote_endpoint(address)
        except ValueError as exc:
            self.show_error(str(exc))
            self.prompter.error("Bad address", str(exc))
            return False
        ok = await self.open_session(endpoint, endpoint.label)
        if ok:
            self._remember(endpoint.label)
        return ok

    def connect_to(self, address: str) -> None:
        self.spawn(self.open_remote(address), f"connect to {address}")

    def open_demo(self) -> None:
        self.spawn(self.open_bundled(), "open the demo")

    def ask_connect(self) -> None:
        dialog = ConnectDialog(self.recent(), self)
        if dialog.exec() and dialog.address():
            self.connect_to(dialog.address())

    def disconnect(self) -> None:
        if self.bridge is not None:
            self.spawn(self.bridge.session.disconnect(), "disconnect")

    def reconnect(self) -> None:
        if self.bridge is None:
            return
        session = self.bridge.session
        self.show_message("reconnecting…")
        self.spawn(session.reconnect(), "reconnect")

    def refresh(self) -> None:
        if self.bridge is not None:
            self.spawn(self.bridge.session.refresh(force=True), "refresh")

    def _busy_changed(self, _busy: bool) -> None:
        self._update_node_actions()

    def _on_failed(self, what: str, exc: object) -> None:
        text = f"{what} failed: {exc}"
        self.show_error(text)

    def _edit_failed(self, title: str, text: str) -> None:
        self.show_error(f"{title}: {text}")
        self.prompter.error(title, text)

    # -- graph --------------------------------------------------------------------------
    def show_snapshot(self, snapshot: GraphSnapshot) -> None:
        self.scene.show_snapshot(snapshot)

    def _snapshot_shown(self, diff: Any) -> None:
        snap = self.scene.snapshot
        if snap is None:
            return
        if diff is None or diff.added_nodes or diff.removed_nodes:
            self.completer_model.setStringList(sorted(snap.nodes))
        if diff is not None:
            for key in diff.added_nodes:
                pos = self._pending_positions.pop(key, None)
                if pos is not None and key in self.scene.nodes:
                    self.scene.place_near(key, pos.x(), pos.y(), diff.added_nodes)
        self.view.update_scene_rect()
        key = self.inspector.key
        self.inspector.show_node(snap, key if key in snap.nodes else None)
        self._update_node_actions()

    def relayout(self) -> None:
        """Lay everything out again for the window's shape; the cards glide there."""
        self.scene.aspect = max(self.view.viewport().width(), 1) / max(
            self.view.viewport().height(), 1)
        if self.scene.shown is None:
            return
        self.scene.relaidOut.connect(self._fit_after_relayout)
        self.scene.relayout(animate=True)

    def _fit_after_relayout(self) -> None:
        self.scene.relaidOut.disconnect(self._fit_after_relayout)
        self.view.fit()

    def _selection_changed(self) -> None:
        key = self.view.selected_key()
        if key is not None:
            self.inspector.show_node(self.scene.snapshot, key)
        self._update_node_actions()

    def inspect(self, key: str) -> None:
        self.inspector.show_node(self.scene.snapshot, key)
        self.docks["inspector"].show()
        self.docks["inspector"].raise_()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def find_node(self, text: str) -> str | None:
        """Select and centre the next node whose key contains ``text``."""
        text = text.strip().lower()
        snap = self.scene.snapshot
        if not text or snap is None:
            return None
        matches = [k for k in snap.nodes if text in k.lower()]
        exact = [k for k in matches if k.lower() == text]
        if not matches:
            self.show_error(f"no node matches '{text}'")
            return None
        if exact:
            key = exact[0]
        else:
            if text != self._search_text:
                self._search_text, self._search_index = text, 0
            else:  # Enter again: the next match
                self._search_index = (self._search_index + 1) % len(matches)
            key = matches[self._search_index]
        self.view.center_on_node(key)
        self.view.setFocus()
        self.show_message(f"{key} ({len(matches)} match{'es' if len(matches) > 1 else ''})")
        return key

    # -- edits --------------------------------------------------------------------------
    def validate_drop(self, parent: str, target: str | None) -> tuple[bool, str]:
        """Preflight a re-point while dragging: the engine's rules on the graph on screen."""
        if self.bridge is None or not self.bridge.session.connected:
            return False, "not connected"
        try:
            ctx = self.bridge.session.plan_context()
        except SessionError as exc:
            return False, str(exc)
        intent = SetBacking(parent, target) if target else DetachBacking(parent)
        reasons = check_intent(ctx, intent)
        if reasons:
            return False, reasons_text(reasons)
        return True, (f"release to back {parent} by {target}" if target
                      else f"release to detach {parent}")

    def request(self, intent: Any) -> None:
        if self.edits is None or self.bridge is None:
            self.show_error("not connected")
            return
        self.edits.request(intent)

    def confirm_detach(self, parent: str) -> None:
        snap = self.scene.snapshot
        child = snap.backing(parent) if snap else None
        if self.prompter.confirm("Detach backing",
                                 f"Detach {parent} from its backing {child}?\n\nThe guest "
                                 f"will no longer see the data {child} provides "
                                 "(undo with Ctrl+Z)."):
            self.request(DetachBacking(parent))

    def selected_node(self) -> str | None:
        key = self.view.selected_key()
        snap = self.scene.snapshot
        if key is None or snap is None or key not in snap.nodes \
                or snap.nodes[key].kind != "block-node":
            return None
        return key

    def _update_node_actions(self) -> None:
        key = self.selected_node()
        connected = self.bridge is not None and self.bridge.session.connected
        for act in self.node_actions:
            act.setEnabled(key is not None and (connected or act is self.act_copy_qmp))
        self.act_open.setEnabled(connected)
        self.act_export.setEnabled(self.scene.snapshot is not None)
        if key is not None:
            snap = self.scene.snapshot
            assert snap is not None
            self.act_ro.setText("Make read-&write" if snap.nodes[key].read_only
                                else "Make &read-only")
            self.act_detach.setEnabled(connected and snap.backing(key) is not None)

    def _chain_below(self, key: str) -> list[str]:
        snap = self.scene.snapshot
        out: list[str] = []
        cur = snap.backing(key) if snap else None
        while cur is not None and cur not in out and snap is not None:
            out.append(cur)
            cur = snap.backing(cur)
        return out

    def image_path(self, key: str) -> str:
        """The host file behind ``key`` (through its ``file`` child if its own name is json:)."""
        snap = self.scene.snapshot
        seen = 0
        while snap is not None and key in snap.nodes and seen < 8:
            fn = snap.nodes[key].filename
            if fn and not fn.startswith("json:"):
                return fn
            child = snap.child(key, "file")
            if child is None:
                return ""
            key, seen = child, seen + 1
        return ""

    def action_snapshot(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        snap = self.scene.snapshot
        if key is None or snap is None:
            return
        node = snap.nodes[key]
        base = self.image_path(key)
        directory = os.path.dirname(base) if base else str(Path.cwd())
        stem = (node.name.lstrip("#") or "node")
        n = 1
        while f"{stem}-snap{n}" in snap.nodes or os.path.exists(
                os.path.join(directory, f"{stem}-snap{n}.qcow2")):
            n += 1
        suggested = os.path.join(directory, f"{stem}-snap{n}.qcow2")
        filename = self.prompter.ask_text("Snapshot", f"New overlay file on top of {key}:",
                                          suggested)
        if not filename:
            return
        overlay = Path(filename).stem
        overlay = "".join(c if c.isalnum() or c in "-_." else "-" for c in overlay)[:31]
        if not overlay[:1].isalpha():
            overlay = f"snap-{overlay}"[:31]
        self.request(ExternalSnapshot(key, overlay, filename))

    def action_stream(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        below = self._chain_below(key)
        if not below:
            self.show_error(f"{key} has no backing chain to stream from")
            return
        everything = "(everything: make it standalone)"
        choice = self.prompter.choose(
            "Stream into this node",
            f"Copy data into {key} from the chain below, down to (not including) the base:",
            [everything, *below[1:]], 0)
        if choice is None:
            return
        self.request(Stream(key, None if choice == everything else choice))

    def action_commit(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        below = self._chain_below(key)
        if not below:
            self.show_error(f"{key} has no backing chain to commit into")
            return
        choice = self.prompter.choose("Commit down to…",
                                      f"Write {key}'s data (and the layers between) into:",
                                      below, 0)
        if choice is None:
            return
        self.request(Commit(key, choice))

    def action_delete(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        if not self.prompter.confirm("Delete node",
                                     f"Delete {key} from the graph (blockdev-del)?\n\nThe "
                                     "image file stays on disk; nothing is written to it."):
            self.show_message("cancelled")
            return
        self.request(Delete(key))

    def action_toggle_ro(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        snap = self.scene.snapshot
        if key is None or snap is None:
            return
        self.request(SetReadOnly(key, not snap.nodes[key].read_only))

    def action_detach(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is not None:
            self.confirm_detach(key)

    def copy_as_qmp_text(self, key: str) -> str:
        snap = self.scene.snapshot
        assert snap is not None
        known = self.bridge.session.added_options if self.bridge else {}
        return json.dumps({"execute": "blockdev-add",
                           "arguments": current_options(snap, key, known)}, indent=2)

    def action_copy_qmp(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        QGuiApplication.clipboard().setText(self.copy_as_qmp_text(key))
        self.show_message(f"copied blockdev-add for {key}")

    def ask_open_image(self, at: QPointF | None = None) -> None:
        path = self.prompter.open_file("Open image")
        if path:
            self.open_image(path, at)

    def open_image(self, path: str, at: QPointF | None = None) -> None:
        from gui.render import _node_name, _probe_format

        try:
            fmt = _probe_format(path)
        except Exception as exc:  # ImageError and OSError: say what is wrong with the file
            self.show_error(str(exc))
            self.prompter.error("Cannot open image", str(exc))
            return
        snap = self.scene.snapshot
        name = _node_name(path, 0)
        n = 2
        while snap is not None and name in snap.nodes:
            name = f"{_node_name(path, 0)[:28]}-{n}"
            n += 1
        if at is not None:
            self._pending_positions[name] = at
        self.request(AddImage(name, os.path.abspath(path), fmt))

    def _undo_text(self, text: str) -> None:
        self.act_undo.setText(f"&Undo {text}" if text else "&Undo")

    def _redo_text(self, text: str) -> None:
        self.act_redo.setText(f"&Redo {text}" if text else "&Redo")

    def undo(self) -> None:
        if self.edits is not None and not self.edits.running:
            self.edits.undo_stack.undo()

    def redo(self) -> None:
        if self.edits is not None and not self.edits.running:
            self.edits.undo_stack.redo()

    def job_verb(self, job_id: str, verb: str) -> None:
        """Pause/resume/cancel/complete a job (job verbs, not graph edits)."""
        if self.bridge is None:
            return
        self.spawn(self.bridge.session.execute(f"job-{verb}", {"id": job_id}),
                   f"{verb} job {job_id}")

    # -- menus and dialogs ----------------------------------------------------------------
    def context_menu(self, key: str | None, global_pos: Any) -> None:
        menu = self.build_context_menu(key, self.view.mapToScene(
            self.view.mapFromGlobal(global_pos)))
        menu.exec(global_pos)

    def build_context_menu(self, key: str | None, scene_pos: QPointF) -> QMenu:
        menu = QMenu(self)
        snap = self.scene.snapshot
        view_actions = self.view_controls.context_actions(key)
        if key is not None and snap is not None and key not in snap.nodes:
            menu.addSection(key)    # a card the lens made: a folded chain
            for act in view_actions:
                menu.addAction(act)
        elif key is not None and snap is not None and snap.nodes[key].kind == "block-node":
            menu.addSection(key)
            menu.addAction(self.act_snapshot)
            menu.addAction(self.act_stream)
            menu.addAction(self.act_commit)
            menu.addSeparator()
            menu.addAction(self.act_ro)
            menu.addAction(self.act_detach)
            menu.addAction(self.act_delete)
            menu.addSeparator()
            menu.addAction(self.act_copy_qmp)
            inspect = menu.addAction("Inspect")
            inspect.triggered.connect(lambda: self.inspect(key))
            menu.addSeparator()
            for act in view_actions:
                menu.addAction(act)
        else:
            here = menu.addAction("Open image here…")
            here.setEnabled(self.act_open.isEnabled())
            here.triggered.connect(lambda: self.ask_open_image(scene_pos))
            menu.addAction(self.act_fit)
            menu.addAction(self.act_relayout)
            for act in view_actions:
                menu.addAction(act)
        return menu

    def ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export graph", str(Path.cwd() / "blockgraph.svg"),
            "SVG (*.svg);;PNG (*.png);;PDF, paged (*.pdf);;Graphviz DOT (*.dot);;JSON (*.json)")
        if path:
            self.export_to(path)

    def export_to(self, path: str) -> None:
        from gui.render import export

        try:
            export(self.scene, path)
        except (OSError, ValueError) as exc:
            self.show_error(str(exc))
            return
        self.show_message(f"exported {path}")

    def about(self) -> None:
        QMessageBox.about(self, "About blockgraph",
                          "<b>blockgraph</b><br>A desktop editor for QEMU block graphs.")

    def select_all_nodes(self) -> None:
        self.scene.select(self.scene.nodes)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard and mouse", SHORTCUTS_HELP)


SHORTCUTS_HELP = """\
Drag the end of a backing arrow (or the round port under a node) onto another node to
re-point the backing link; green means allowed, red shows QEMU's reason. Drop on empty
canvas to detach. Esc cancels a drag.

Click: select · Ctrl+click: add or remove · drag on empty canvas: select a band
Drag a node: move the selection · Ctrl+A: select all · Esc: clear the selection
Wheel: zoom · Middle button or Alt+drag: pan · F: fit · Ctrl+0: 100 %
Arrows: walk the graph (Up: parent, Down: backing, Left/Right: same row)
Enter or double-click: inspect · Ctrl+F: find a node
Ctrl+Shift+S snapshot · Ctrl+Shift+T stream · Ctrl+Shift+M commit · Del delete
Ctrl+R read-only · Ctrl+Shift+D detach · Ctrl+Shift+C copy as QMP
Ctrl+Z / Ctrl+Shift+Z undo / redo · Ctrl+P permissions · Ctrl+L re-layout
Ctrl+[ fold a chain · Ctrl+] or double-click unfold · Ctrl+Shift+V focus on the VM
Ctrl+Shift+F filter (driver:NAME, file:TEXT, job:ID) · Ctrl+Shift+E show everything
Ctrl+M minimap
"""

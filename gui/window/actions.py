"""The editor window's actions, menus, toolbar and context menu: all of them, in one place.

:class:`ActionsWindow` is the layer of the main window that owns every ``QAction``
(``act_*``: text, shortcut, tooltip, what it calls), the menu bar, the toolbar and the
node context menu, and keeps the node actions enabled only when they apply. The
actions call the window's parts — the connection, the editing controller, the canvas —
which :class:`~gui.window.main_window.MainWindow` creates before :meth:`build_actions`.

To add an action: create it in :meth:`ActionsWindow.build_actions` with
:meth:`~ActionsWindow.action`, then list it in :meth:`~ActionsWindow._build_menus` (and
the toolbar or context menu if it belongs there); a shortcut also goes in
:data:`SHORTCUTS_HELP` and the README's key table (a test compares the two).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import PySide6
from PySide6.QtCore import QPointF, QSettings, qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QToolBar,
    QWidget,
)

from gui.session import Session
from gui.tours.teaching import install_teaching
from gui.views.canvas import GraphCanvas
from gui.views.minimap import Minimap
from gui.views.scene import GraphScene
from gui.views.view_controls import ViewControls
from gui.widgets.dialogs import DialogPrompter, Prompter
from gui.window.connection import SAFETY_CHOICES, WindowConnection
from gui.window.editing import EditingController
from gui.window.edits import EditController
from gui.window.media import MediaTracker
from gui.window.recording import RecordingController
from gui.window.search import NodeSearch
from gui.window.staging import StagingController

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
Ctrl+B stage edits (or hold Shift while dropping a link) · Ctrl+Return apply them
Right-click a CD-ROM or floppy drive for its tray and medium
"""

Shortcut = str | QKeySequence.StandardKey | None


class ActionsWindow(QMainWindow):
    """A main window with the editor's actions and menus (see the module docstring)."""

    # the parts the actions call, created by the main window before build_actions()
    scene: GraphScene
    view: GraphCanvas
    minimap: Minimap
    settings: QSettings
    connection: WindowConnection
    editing: EditingController
    edits: EditController
    search: NodeSearch
    staging: StagingController
    media: MediaTracker
    recording: RecordingController
    dialog_prompter: DialogPrompter
    prompter: Prompter
    docks: dict[str, QDockWidget]

    # the window's own behaviour the actions call (gui.window.main_window)
    def relayout(self, animate: bool = False) -> None:
        raise NotImplementedError

    def show_message(self, text: str) -> None:
        raise NotImplementedError

    def set_dark(self, on: bool) -> None:
        raise NotImplementedError

    def set_preview(self, on: bool) -> None:
        raise NotImplementedError

    def inspect(self, key: str) -> None:
        raise NotImplementedError

    def export_to(self, path: str) -> None:
        raise NotImplementedError

    # -- building -----------------------------------------------------------------------
    def action(self, text: str, slot: Callable[..., Any], shortcut: Shortcut = None,
               tip: str = "", checkable: bool = False) -> QAction:
        """A window action: ``slot`` gets the checked state if ``checkable``, else nothing."""
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

    def build_actions(self) -> None:
        """Create every action, the menus and the toolbar."""
        # Over 60 lines: one declaration per action and menu entry, a table rather than logic.
        a, c, e, v = self.action, self.connection, self.editing, self.view
        self.act_connect = a("&Connect to QEMU…", c.ask_connect, "Ctrl+K",
                             "Connect to a QEMU or qemu-storage-daemon QMP socket")
        self.act_demo = a("Open &demo (bundled engine)", c.open_demo, None,
                          "The bundled engine with demo disk chains")
        self.act_open = a("&Open image…", e.ask_open_image, QKeySequence.StandardKey.Open,
                          "Open an image file (and its backing chain) as a new node")
        self.act_cmdline = a("Open QEMU &command line…", c.ask_command_line, "Ctrl+Shift+O",
                             "Show the block graph a QEMU command line (ps, a libvirt log) "
                             "builds, on the bundled engine")
        self.act_export = a("&Export…", self.ask_export, "Ctrl+E",
                            "Save the graph as SVG, PNG, PDF, DOT or JSON")
        self.act_disconnect = a("&Disconnect", c.disconnect_peer, None, "Close the connection")
        # StandardKey.Quit is empty on some platforms
        self.act_quit = a("&Quit", self.close, "Ctrl+Q")
        self.act_snapshot = a("&Snapshot…", e.snapshot, "Ctrl+Shift+S",
                              "Create a qcow2 overlay on top of the selected node")
        self.act_stream = a("S&tream into this node…", e.stream, "Ctrl+Shift+T",
                            "Copy data from the backing chain into the selected node")
        self.act_commit = a("&Commit down to…", e.commit, "Ctrl+Shift+M",
                            "Write the selected node's data down into a base")
        self.act_delete = a("&Delete node", e.delete, QKeySequence.StandardKey.Delete,
                            "blockdev-del the selected node")
        self.act_ro = a("Toggle &read-only", e.toggle_read_only, "Ctrl+R",
                        "Reopen the selected node read-only / read-write")
        self.act_detach = a("Detac&h backing", e.detach, "Ctrl+Shift+D",
                            "Drop the selected node's backing link")
        self.act_select_all = a("Select &all nodes", self.select_all_nodes,
                                QKeySequence.StandardKey.SelectAll,
                                "Select every node on the canvas")
        self.act_copy_qmp = a("Copy as &QMP", e.copy_qmp, "Ctrl+Shift+C",
                              "Copy blockdev-add arguments that re-create the selected node")
        self.act_fit = a("&Fit to window", v.fit, "F", "Show the whole graph")
        self.act_zoom_in = a("Zoom &in", lambda: v.zoom_by(1.25),
                             QKeySequence.StandardKey.ZoomIn)
        self.act_zoom_out = a("Zoom &out", lambda: v.zoom_by(0.8),
                              QKeySequence.StandardKey.ZoomOut)
        self.act_zoom_reset = a("&Actual size", v.reset_zoom, "Ctrl+0")
        self.act_relayout = a("Re-&layout", lambda: self.relayout(animate=True), "Ctrl+L",
                              "Lay out every node again, for the window's shape")
        self.act_refresh = a("&Refresh", c.refresh, QKeySequence.StandardKey.Refresh,
                             "Re-read the graph from the peer")
        self.act_safety = a("Re-read the graph &every…", self.ask_safety_interval, None,
                            "How often to re-read the graph when no event says it changed "
                            "(another client's changes)")
        self.act_search = a("&Find node…", self.search.focus, QKeySequence.StandardKey.Find)
        self.act_perms = a("Show &permissions", self.scene.set_show_permissions, "Ctrl+P",
                           "Label every link with the permissions its parent takes and shares "
                           "(a legend explains the words)",
                           checkable=True)
        self.act_dark = a("&Dark theme", self.set_dark, "Ctrl+Shift+L", checkable=True)
        self.act_preview = a("&Preview plans before executing", self.set_preview, None,
                             "Show the QMP a change will send, before sending it",
                             checkable=True)
        self.act_preview.setChecked(self.dialog_prompter.preview_enabled)
        self.act_undo = a("&Undo", e.undo, QKeySequence.StandardKey.Undo,
                          "Undo the last edit")
        # Redo's standard key depends on the platform (Ctrl+Y or Ctrl+Shift+Z): bind both
        self.act_redo = a("&Redo", e.redo, "Ctrl+Shift+Z", "Redo the edit just undone")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        # the toolbar shows these short words; the menu and tooltip say what is undone
        self.act_undo.setIconText("Undo")
        self.act_redo.setIconText("Redo")
        self.act_undo.setEnabled(False)
        self.act_redo.setEnabled(False)
        self.act_about = a("&About blockgraph", self.about)
        self.act_shortcuts = a("&Keyboard and mouse", self.show_shortcuts, "F1")
        self.node_actions = [self.act_snapshot, self.act_stream, self.act_commit,
                             self.act_delete, self.act_ro, self.act_detach, self.act_copy_qmp]
        self._build_staging_actions()
        self._build_script_actions()
        # fold, focus, filter, minimap: what the canvas shows (gui.views.view_controls)
        self.view_controls = ViewControls(self.scene, self.view, self.minimap, self.settings,
                                          self, self.show_message)
        self._build_menus()
        self._build_toolbar()
        self.teaching_actions = install_teaching(self)
        self.update_node_actions()

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        _add(m, (self.act_connect, self.act_demo, self.act_open, self.act_cmdline))
        self.recent_menu = m.addMenu("Recent connections")
        self.fill_recent()
        _add(m, (None, self.act_export, self.act_save_script, self.act_replay, None,
                 self.act_disconnect, self.act_quit))
        _add(mb.addMenu("&Edit"), (
            self.act_undo, self.act_redo, None, self.act_snapshot, self.act_stream,
            self.act_commit, self.act_delete, self.act_ro, self.act_detach, None,
            self.act_stage, self.act_apply_staged, self.act_discard_staged, None,
            self.act_select_all, self.act_copy_qmp, None, self.act_preview))
        m = mb.addMenu("&View")
        _add(m, (self.act_fit, self.act_zoom_in, self.act_zoom_out, self.act_zoom_reset,
                 self.act_relayout, self.act_refresh, self.act_safety, None, self.act_search,
                 self.act_perms, self.act_dark))
        self.view_controls.install(m)
        _add(m, [None, *(dock.toggleViewAction() for dock in self.docks.values())])
        _add(mb.addMenu("&Help"), (self.act_shortcuts, self.act_about))

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("toolbar-main")
        tb.setMovable(False)
        for act in (self.act_connect, self.act_open, None, self.act_undo, self.act_redo, None,
                    self.act_snapshot, self.act_stream, self.act_commit, self.act_delete, None,
                    self.act_fit, self.act_relayout, self.act_perms):
            tb.addSeparator() if act is None else tb.addAction(act)
        spacer = QWidget()
        spacer.setSizePolicy(spacer.sizePolicy().horizontalPolicy().Expanding,
                             spacer.sizePolicy().verticalPolicy())
        tb.addWidget(spacer)
        tb.addWidget(self.view_controls.filter_field)
        tb.addWidget(self.search.box)
        self.addToolBar(tb)

    def _build_staging_actions(self) -> None:
        """Edit → Stage edits, Apply staged edits, Discard staged edits."""
        a, st = self.action, self.staging
        self.act_stage = a("Stage &edits", st.set_enabled, "Ctrl+B",
                           "Collect link changes, read-only toggles and snapshots instead "
                           "of running them; apply them together (Shift+drop stages one)",
                           checkable=True)
        self.act_apply_staged = a("&Apply staged edits…", self.apply_staged, "Ctrl+Return",
                                  "Review every staged edit once and send them as one "
                                  "atomic blockdev-reopen (or one transaction)")
        self.act_discard_staged = a("Discard staged edits", st.clear, None,
                                    "Forget every staged edit (nothing was sent)")
        self.act_apply_staged.setEnabled(False)
        self.act_discard_staged.setEnabled(False)

    def _build_script_actions(self) -> None:
        """File → Save session as script…, Replay script…"""
        a, r = self.action, self.recording
        self.act_save_script = a("Save session as &script…", r.ask_save, None,
                                 "Save this session's QMP traffic as a replayable script "
                                 "(JSON lines, or qmp-shell lines)")
        self.act_replay = a("Re&play script…", r.ask_replay, None,
                            "Run a recorded QMP script on this peer, step by step, marking "
                            "every step that does not go as recorded")

    def apply_staged(self) -> None:
        raise NotImplementedError

    def media_entries(self, menu: QMenu, key: str) -> None:
        """A drive's tray and medium entries (for drives ``query-block`` calls removable)."""
        drive = self.media.drive(key)
        if drive is None or not drive.removable:
            return
        live = self.connection.is_connected
        menu.addSection(f"{drive.label}: {drive.state_text()}")
        entries = [("Open tray", "open", drive.tray_open is False),
                   ("Close tray", "close", bool(drive.tray_open)),
                   ("Eject medium", "eject", drive.medium is not None or not drive.tray_open),
                   ("Force eject (the guest locked it)", "force-eject", drive.locked),
                   ("Change medium…" if drive.medium else "Insert medium…", "insert", True)]
        for text, what, shown in entries:
            if not shown:
                continue
            act = menu.addAction(text)
            act.setEnabled(live)
            act.triggered.connect(lambda _=False, w=what: self.editing.media_request(key, w))

    def fill_recent(self) -> None:
        """File → Recent connections, from the remembered addresses."""
        self.recent_menu.clear()
        recent = self.connection.recent()
        for address in recent:
            act = self.recent_menu.addAction(address)
            act.triggered.connect(lambda _=False, a=address: self.connection.connect_to(a))
        self.recent_menu.setEnabled(bool(recent))

    # -- state --------------------------------------------------------------------------
    def update_node_actions(self) -> None:
        """Enable the node actions when a block node is selected (and a peer connected)."""
        key = self.editing.selected_node()
        connected = self.connection.is_connected
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

    def update_undo_actions(self) -> None:
        """Undo and redo: enabled only while connected and no edit runs; their menu
        texts and tooltips name the edit (the toolbar keeps its short word)."""
        stack = self.edits.undo_stack
        live = self.connection.is_connected and not self.edits.running
        for act, word, can, text in (
                (self.act_undo, "Undo", stack.canUndo(), stack.undoText()),
                (self.act_redo, "Redo", stack.canRedo(), stack.redoText())):
            act.setEnabled(live and can)
            act.setText(f"&{word} {text}" if can and text else f"&{word}")
            keys = act.shortcut().toString()
            tip = f"{word}: {text}" if can and text else f"{word} the last edit"
            if can and not live:
                tip += " (not while disconnected or while an edit runs)"
            act.setToolTip(f"{tip} ({keys})" if keys else tip)

    # -- menus and dialogs --------------------------------------------------------------
    def context_menu(self, key: str | None, global_pos: Any) -> None:
        menu = self.build_context_menu(key, self.view.mapToScene(
            self.view.mapFromGlobal(global_pos)))
        menu.exec(global_pos)

    def build_context_menu(self, key: str | None, scene_pos: QPointF) -> QMenu:
        """The node's edits on a block node; Open image here… elsewhere."""
        menu = QMenu(self)
        snap = self.scene.snapshot
        view_actions = self.view_controls.context_actions(key)
        if key is not None and snap is not None and key not in snap.nodes:
            menu.addSection(key)     # a card the lens made: a folded chain
            _add(menu, view_actions)
        elif key is not None and snap is not None and snap.nodes[key].kind == "block-backend":
            self.media_entries(menu, key)
            if menu.isEmpty():
                menu.addSection(snap.nodes[key].name or key)
            inspect = menu.addAction("Inspect")
            inspect.triggered.connect(lambda: self.inspect(key))
            _add(menu, (None, *view_actions))
        elif key is not None and snap is not None and snap.nodes[key].kind == "block-node":
            menu.addSection(key)
            _add(menu, (self.act_snapshot, self.act_stream, self.act_commit, None,
                        self.act_ro, self.act_detach, self.act_delete, None,
                        self.act_copy_qmp))
            inspect = menu.addAction("Inspect")
            inspect.triggered.connect(lambda: self.inspect(key))
            _add(menu, (None, *view_actions))
        else:
            here = menu.addAction("Open image here…")
            here.setEnabled(self.act_open.isEnabled())
            here.triggered.connect(lambda: self.editing.ask_open_image(scene_pos))
            _add(menu, (self.act_fit, self.act_relayout, *view_actions))
        return menu

    def ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export graph", str(Path.cwd() / "blockgraph.svg"),
            "SVG (*.svg);;PNG (*.png);;PDF, paged (*.pdf);;Graphviz DOT (*.dot);;"
            "JSON (*.json)")
        if path:
            self.export_to(path)

    def about_text(self) -> str:
        """The About box: our version, the peer's, and what runs us."""
        try:
            version = metadata.version("blockgraph")
        except metadata.PackageNotFoundError:
            version = "(not installed)"
        session: Session | None = self.connection.session
        caps = session.capabilities if session is not None else None
        peer = (f"Connected to {self.connection.address}: QEMU {caps.version_text}"
                if caps is not None and session is not None and session.connected
                else "Not connected")
        return (f"<b>blockgraph {version}</b><br>A desktop editor for QEMU block graphs."
                f"<br><br>{peer}<br>PySide6 {PySide6.__version__}, Qt "
                f"{qVersion()}, Python {platform.python_version()}")

    def ask_safety_interval(self) -> None:
        """View → Re-read the graph every…: the session's safety re-read, remembered."""
        labels = [_interval_text(n) for n in SAFETY_CHOICES]
        current = self.connection.safety_interval
        default = SAFETY_CHOICES.index(current) if current in SAFETY_CHOICES else 0
        choice = self.prompter.choose(
            "Re-read the graph", "Events, your edits and Refresh re-read the graph when it "
            "changes. Also re-read it, for changes no event reports:", labels, default)
        if choice is None:
            return
        seconds = SAFETY_CHOICES[labels.index(choice)]
        self.connection.set_safety_interval(seconds)
        self.connection.message.emit(f"the graph is re-read {_interval_text(seconds)}"
                                     if seconds else "the graph is re-read when it changes")

    def about(self) -> None:
        QMessageBox.about(self, "About blockgraph", self.about_text())

    def select_all_nodes(self) -> None:
        self.scene.select(self.scene.nodes)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard and mouse", SHORTCUTS_HELP)


def _interval_text(seconds: int) -> str:
    if not seconds:
        return "never"
    return f"every {seconds // 60} min" if seconds % 60 == 0 else f"every {seconds} s"


def _add(menu: QMenu, actions: Iterable[QAction | None]) -> None:
    """Add ``actions`` to ``menu`` in order, a separator for each None."""
    for act in actions:
        if act is None:
            menu.addSeparator()
        else:
            menu.addAction(act)

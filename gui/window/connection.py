"""The window's connection: one session at a time, to the bundled engine or a remote QEMU.

:class:`WindowConnection` opens and closes sessions (with the demo on the bundled
engine), remembers recent addresses, and owns the coroutines the window starts (through
the session's :class:`~gui.window.bridge.SessionBridge`, or its own set while there is
none). It never touches a widget: it reports through signals, and the main window shows
what they say (:mod:`gui.window.main_window`).

A new connection is made beside the working one and replaces it only once it is up: a
failed Connect leaves the session the user was working in as it was. A monitor that
another client holds accepts the connection but never greets (QEMU serves one client per
monitor); it is probed first, and said to be busy within seconds instead of a minute of
"connecting…".
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QWidget

from engine.launcher.build import BuildError
from engine.launcher.cmdline import CommandLineError, program_of
from engine.launcher.opened import open_command_line
from gui.discovery.sockets import probe
from gui.images.demo import build_demo
from gui.session import ConnectFailed, ConnectionStatus, Endpoint, Session
from gui.session.peers import BUNDLED_LABEL, BundledPeer, remote_endpoint
from gui.widgets.command_line import CommandLineDialog
from gui.widgets.dialogs import ConnectDialog
from gui.window.bridge import SessionBridge

MAX_RECENT = 8
COMMAND_LINE_LABEL = "QEMU command line (bundled engine)"
#: the safety re-read's interval unless the user chose another (settings: safety_interval)
SAFETY_INTERVAL = 60
#: what View → Re-read the graph… offers, in seconds (0: never)
SAFETY_CHOICES = (0, 10, 30, 60, 300, 900)
#: how long a monitor may take to greet before it is called busy, in seconds
GREETING_PROBE = 3.0


class WindowConnection(QObject):
    """The current session of a window (see the module docstring)."""

    #: a new session's bridge, before it connects: wire its signals (bridge, label)
    sessionOpened = Signal(object, str)
    #: the session connected; its first graph
    connected = Signal(object)
    #: the session was closed: clear what it showed
    sessionClosed = Signal()
    #: the demo chains were opened on the bundled engine
    demoOpened = Signal()
    #: something failed: (title, text), shown in the status bar and a message box
    error = Signal(str, str)
    #: a coroutine the window started failed: (what was being done, the exception)
    failed = Signal(str, object)
    #: a line for the status bar
    message = Signal(str)
    recentChanged = Signal()
    #: a command line was opened with options blockgraph does not model (as written)
    unmodelled = Signal(list)

    def __init__(self, settings: QSettings, parent: QWidget) -> None:
        super().__init__(parent)
        self.settings = settings
        self.parent_widget = parent
        self.bridge: SessionBridge | None = None
        self.bundled: BundledPeer | None = None
        self.address = ""
        self._background: set[asyncio.Task[Any]] = set()

    # -- state --------------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        return self.bridge.session if self.bridge is not None else None

    @property
    def is_connected(self) -> bool:
        return self.bridge is not None and self.bridge.session.connected

    @property
    def status(self) -> ConnectionStatus:
        if self.bridge is None:
            return ConnectionStatus.DISCONNECTED
        return self.bridge.session.state.status

    # -- coroutines ---------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop; a failure is reported as ``failed(what, exc)``."""
        if self.bridge is not None:
            return self.bridge.spawn(coro, what)
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.failed.emit(what, t.exception())

        task.add_done_callback(done)
        return task

    # -- sessions -----------------------------------------------------------------------
    async def open_session(self, endpoint: Endpoint, label: str,
                           bundled: BundledPeer | None = None) -> bool:
        """Connect to ``endpoint``; once connected, close the current session and use the
        new one. True when connected; on failure the current session stays."""
        session = Session(endpoint, poll_interval=self.safety_interval or None)
        bridge = SessionBridge(session, self.parent_widget)
        self.message.emit(f"connecting to {label}…")
        try:
            snapshot = await session.connect()
        except ConnectFailed as exc:
            bridge.detach()
            await session.close()
            if bundled is not None:
                bundled.close()
            self._not_connected(label, str(exc))
            return False
        await self.close_session()
        bridge.failed.connect(self.failed.emit)
        self.bridge = bridge
        self.bundled = bundled
        self.address = label
        self.sessionOpened.emit(bridge, label)
        self.connected.emit(snapshot)
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
        self.sessionClosed.emit()

    async def open_bundled(self, demo_dir: Path | None = None, demo: bool = True) -> bool:
        """The bundled engine, with the demo chains unless ``demo`` is False."""
        bundled = BundledPeer()
        if not await self.open_session(bundled.endpoint, BUNDLED_LABEL, bundled):
            return False
        if demo:
            assert self.bridge is not None
            await build_demo(self.bridge.session, demo_dir)
            self.demoOpened.emit()
        self.message.emit("bundled engine with the demo chains — drag a backing arrow's end "
                          "onto another node to rebase it" if demo else "bundled engine")
        return True

    def _not_connected(self, label: str, reason: str) -> None:
        """Say why ``label`` could not be reached, and what the window still shows."""
        self.error.emit("Cannot connect", reason)
        self.message.emit(f"not connected to {label}" + (
            f"; still connected to {self.address}" if self.is_connected else ""))

    async def open_command_line(self, text: str) -> bool:
        """The bundled engine with the graph a QEMU command line builds; the options
        blockgraph does not model are named in the status bar and a message."""
        try:
            opened = open_command_line(text)
        except (CommandLineError, BuildError) as exc:
            self.error.emit("Cannot open the QEMU command line", f"{program_of(text)}: {exc}")
            return False
        bundled = BundledPeer(engine=opened.machine)
        if not await self.open_session(bundled.endpoint, COMMAND_LINE_LABEL, bundled):
            return False
        skipped = opened.unmodelled()
        if skipped:
            self.unmodelled.emit(skipped)
            self.message.emit(f"QEMU command line: {len(skipped)} option"
                              f"{'s' if len(skipped) != 1 else ''} not modelled: "
                              + "; ".join(skipped))
        else:
            self.message.emit("QEMU command line: every option modelled")
        return True

    async def open_remote(self, address: str) -> bool:
        try:
            endpoint = remote_endpoint(address)
        except ValueError as exc:
            self.error.emit("Bad address", str(exc))
            return False
        self.message.emit(f"connecting to {endpoint.label}…")
        found = await asyncio.to_thread(probe, endpoint.label, GREETING_PROBE)
        if found.state != "free":
            reason = {"busy": f"no QMP greeting within {GREETING_PROBE:g} s: another client "
                              "holds this monitor (QEMU serves one client per monitor; "
                              "close that client, or give QEMU a second monitor)"}.get(
                found.state, found.detail)
            self._not_connected(endpoint.label, f"cannot connect to {endpoint.label}: {reason}")
            return False
        ok = await self.open_session(endpoint, endpoint.label)
        if ok:
            self.remember(endpoint.label)
        return ok

    # -- what the menus ask -------------------------------------------------------------
    def connect_to(self, address: str) -> None:
        self.spawn(self.open_remote(address), f"connect to {address}")

    def ask_command_line(self) -> None:
        text = CommandLineDialog.ask(self.parent_widget)
        if text:
            self.spawn(self.open_command_line(text), "open a QEMU command line")

    def open_demo(self) -> None:
        self.spawn(self.open_bundled(), "open the demo")

    def ask_connect(self) -> None:
        dialog = ConnectDialog(self.recent(), self.parent_widget)
        if dialog.exec() and dialog.address():
            self.connect_to(dialog.address())

    def disconnect_peer(self) -> None:
        if self.bridge is not None:
            self.spawn(self.bridge.session.disconnect(), "disconnect")

    def reconnect(self) -> None:
        if self.bridge is None:
            return
        session = self.bridge.session
        self.message.emit("reconnecting…")
        self.spawn(session.reconnect(), "reconnect")

    def refresh(self) -> None:
        if self.bridge is not None:
            self.spawn(self.bridge.session.refresh(force=True), "refresh")

    # -- the safety re-read -------------------------------------------------------------
    @property
    def safety_interval(self) -> int:
        """Seconds between re-reads of the graph that no event asked for (0: never).

        Events, this editor's own edits, Refresh and reconnecting re-read the graph when
        they call for it (:mod:`gui.session.updates`); this catches what no event reports,
        such as another client's ``blockdev-add``."""
        value = self.settings.value("safety_interval", SAFETY_INTERVAL)
        try:
            return max(0, int(value))   # type: ignore[call-overload]
        except (TypeError, ValueError):
            return SAFETY_INTERVAL

    def set_safety_interval(self, seconds: int) -> None:
        self.settings.setValue("safety_interval", int(seconds))
        if self.bridge is not None:
            self.bridge.session.set_poll_interval(seconds or None)

    # -- recent addresses ---------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    def remember(self, address: str) -> None:
        items = [address, *[r for r in self.recent() if r != address]][:MAX_RECENT]
        self.settings.setValue("recent", items)
        self.settings.sync()
        self.recentChanged.emit()

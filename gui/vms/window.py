"""The VMs window: the VM list beside the VMs' graphs, live from libvirt's events.

    window = VmsWindow(settings)
    await window.open_address("qemu:///system")       # every domain of the connection
    await window.open_address("qemu+ssh://h2/system")  # a second host: a second group
    await window.open_address("unix:/run/qemu-server/101.qmp")   # a QMP socket
    await window.close_connections()

Each libvirt connection is a :class:`~gui.libvirt.watch.HostWatch` and a group in the
list; QMP sockets share one group (:class:`~gui.vms.socket_watch.SocketWatch`). Rows and
frames change only when a watch reports a change — a lifecycle event, a graph read
after one of QEMU's events, a job's progress — so nothing here runs on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QMainWindow, QSplitter, QWidget

from gui.discovery.listing import Offer, discover
from gui.libvirt.host import domain_address, is_libvirt_uri, split_domain_address
from gui.libvirt.watch import HostWatch
from gui.session import Session, SessionError
from gui.vms.discover_dialog import DiscoverDialog
from gui.vms.socket_watch import SocketWatch
from gui.vms.status import vm_status
from gui.vms.vm_frames import FRAMES, TABS, VmFrames
from gui.vms.vm_list import VmList


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def domains_text(watch: HostWatch) -> str:
    """A connection's group row: ``5 domains, 4 running``."""
    running = sum(d.running for d in watch.domains.values())
    return f"{plural(len(watch.domains), 'domain')}, {running} running"


class VmsWindow(QMainWindow):
    """Several VMs of several connections at once (see the module)."""

    def __init__(self, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or QSettings()
        self.setWindowTitle("blockgraph — VMs")
        self.vm_list = VmList()
        self.frames = VmFrames()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.vm_list)
        splitter.addWidget(self.frames)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([340, 1000])
        self.setCentralWidget(splitter)
        self.hosts: dict[str, HostWatch] = {}
        self.sockets = SocketWatch()
        self.sockets.on_change(self._socket_changed)
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.vm_list.visibilityChanged.connect(self.frames.set_visible)
        self.vm_list.focusRequested.connect(self.frames.focus)
        self._menus()
        self._restore()
        self.statusBar().showMessage("File → Connect to… lists the VMs of this host")

    # -- menus and settings ------------------------------------------------------------
    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        connect = QAction("&Connect to…", self)
        connect.setShortcut(QKeySequence.StandardKey.Open)
        connect.setToolTip("Libvirt connections and QMP sockets of this host, or any address")
        connect.triggered.connect(self.ask_connect)
        file_menu.addAction(connect)
        close = QAction("&Close window", self)
        close.setShortcut(QKeySequence.StandardKey.Close)
        close.triggered.connect(self.close)
        file_menu.addAction(close)
        view = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        self.mode_actions: dict[str, QAction] = {}
        for mode, text in ((FRAMES, "VMs in &frames"), (TABS, "VMs in &tabs")):
            action = QAction(text, self, checkable=True)
            action.triggered.connect(lambda _c=False, m=mode: self.set_mode(m))
            group.addAction(action)
            view.addAction(action)
            self.mode_actions[mode] = action

    def set_mode(self, mode: str) -> None:
        """Frames or tabs; remembered."""
        self.frames.set_mode(mode)
        self.mode_actions[mode].setChecked(True)
        self.settings.setValue("vms/mode", mode)

    def _restore(self) -> None:
        geometry = self.settings.value("vms/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        mode = self.settings.value("vms/mode", FRAMES)
        self.set_mode(mode if mode in (FRAMES, TABS) else FRAMES)

    def save_settings(self) -> None:
        self.settings.setValue("vms/geometry", self.saveGeometry())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        super().closeEvent(event)

    # -- coroutines ------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._error(f"{what}: {t.exception()}")

        task.add_done_callback(done)
        return task

    def _error(self, text: str) -> None:
        self.errors.append(text)
        self.statusBar().showMessage(text)

    # -- connecting --------------------------------------------------------------------------
    async def open_address(self, address: str) -> bool:
        """A libvirt URI (with ``#DOMAIN``: that domain focused) or a QMP socket."""
        uri, name = split_domain_address(address)
        if is_libvirt_uri(uri):
            if not await self.add_connection(uri):
                return False
            if name:
                self.frames.focus(domain_address(uri, name))
            return True
        await self.sockets.add(address)
        return address not in self.sockets.errors

    async def add_connection(self, uri: str) -> bool:
        """Every domain of ``uri`` in a group of its own; False (and why) if it fails."""
        if uri in self.hosts:
            return True
        watch = HostWatch(uri)
        self.hosts[uri] = watch
        self.vm_list.set_group(uri, "connecting…")
        watch.on_change(lambda name: self._domain_changed(uri, name))
        try:
            await watch.start()
        except SessionError as exc:
            del self.hosts[uri]
            await watch.close()
            self.vm_list.set_group(uri, f"cannot connect: {exc}")
            self._error(f"{uri}: {exc}")
            return False
        self._list_changed(uri)
        self.statusBar().showMessage(self._summary())
        return True

    def ask_connect(self) -> None:
        """Find what the host offers (off the GUI thread), then let the user pick."""
        self.statusBar().showMessage("looking for libvirt connections and QMP sockets…")
        self.spawn(self._discover_and_ask(), "find what this host offers")

    async def _discover_and_ask(self) -> None:
        # a plain thread (qasync's default executor is made of QThreads that outlive it)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="discover") as pool:
            offers = await asyncio.wrap_future(pool.submit(discover, list(self.hosts)))
        self.show_offers(offers)

    def show_offers(self, offers: list[Offer]) -> DiscoverDialog:
        dialog = DiscoverDialog(offers, self)
        dialog.accepted.connect(lambda: dialog.address() and self.spawn(
            self.open_address(dialog.address()), f"connect to {dialog.address()}"))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self.statusBar().showMessage(self._summary())
        return dialog

    async def close_connections(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for uri in list(self.hosts):
            await self.hosts.pop(uri).close()
        await self.sockets.close()

    # -- what the watches report -------------------------------------------------------------
    def sessions(self) -> Iterator[tuple[str, Session]]:
        """Every open session: (address, session)."""
        for uri, watch in self.hosts.items():
            for name, session in watch.sessions.items():
                yield domain_address(uri, name), session
        yield from self.sockets.sessions.items()

    def _summary(self) -> str:
        domains = sum(len(w.domains) for w in self.hosts.values())
        running = sum(d.running for w in self.hosts.values() for d in w.domains.values())
        text = (f"{plural(domains, 'domain')} ({running} running) on "
                f"{plural(len(self.hosts), 'connection')}")
        if self.sockets.sessions:
            text += f", {plural(len(self.sockets.sessions), 'QMP socket')}"
        return text

    def _domain_changed(self, uri: str, name: str) -> None:
        if uri not in self.hosts:
            return
        if name:
            self._show_domain(uri, name)
        else:
            self._list_changed(uri)
        self.statusBar().showMessage(self._summary())

    def _list_changed(self, uri: str) -> None:
        watch = self.hosts[uri]
        present = {domain_address(uri, n) for n in watch.domains}
        for address in [a for a in self.vm_list.rows if a.startswith(uri + "#")]:
            if address not in present:
                self.vm_list.remove_vm(address)
                self.frames.remove(address)
        for name in watch.domains:
            self._show_domain(uri, name)
        self.vm_list.set_group(uri, domains_text(watch) if watch.lost is None
                               else f"connection lost: {watch.lost}")

    def _show_domain(self, uri: str, name: str) -> None:
        watch = self.hosts[uri]
        domain = watch.domains.get(name)
        if domain is None:
            return
        address = domain_address(uri, name)
        session = watch.sessions.get(name)
        status = (vm_status(domain.state.value, session, domain.error) if watch.lost is None
                  else "unknown: connection to libvirt lost")
        self.vm_list.set_vm(uri, address, name, status)
        frame = self.frames.frame(address, name)
        frame.set_status(status)
        graph = session.snapshot if session is not None and session.connected else None
        frame.show_graph(graph, domain.error or f"{name} is {domain.state.value}: libvirt "
                                                "keeps its disks in the XML, no live graph")
        self.vm_list.set_group(uri, domains_text(watch) if watch.lost is None
                               else f"connection lost: {watch.lost}")

    def _socket_changed(self, address: str) -> None:
        group = self.sockets.group
        for sock, name in self.sockets.entries():
            if address and sock != address:
                continue
            status = self.sockets.status(sock)
            self.vm_list.set_vm(group, sock, name, status)
            frame = self.frames.frame(sock, name)
            frame.set_status(status)
            frame.show_graph(self.sockets.snapshot(sock), status)
        self.statusBar().showMessage(self._summary())

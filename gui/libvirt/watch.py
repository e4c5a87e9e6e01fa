"""Every domain of one libvirt connection, kept live by libvirt's events (asyncio; Qt-free).

    watch = HostWatch("qemu:///system")
    watch.on_change(lambda name: ...)        # a domain's state, jobs or graph changed
    await watch.start()                      # lists the domains, opens a session per running one
    watch.domains["vm1"].state               # DomainState.RUNNING
    watch.sessions["vm1"].snapshot           # its graph (read through passthrough)
    await watch.close()

The VM list and the VM frames of the window read this. Nothing here polls: the domain
list is read again when libvirt reports a lifecycle event (started, stopped, paused,
defined…), each running domain's graph is kept by its session from QEMU's events
relayed by libvirt (``poll_interval=None``), job status changes included. While a job
copies data the session reads its progress with ``query-jobs`` (QEMU has no progress
event); once no job progresses, nothing is sent until the next event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gui.libvirt.host import DomainEvent, DomainInfo, DomainState, LibvirtHost
from gui.session import ConnectFailed, Session, SessionError
from gui.session.observers import Observers


@dataclass(slots=True)
class DomainWatch:
    """What the window shows of one domain."""

    name: str
    state: DomainState
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state in (DomainState.RUNNING, DomainState.PAUSED)


class HostWatch:
    """One libvirt connection's domains and a session per running one (see the module)."""

    def __init__(self, uri: str, host: LibvirtHost | None = None) -> None:
        self.uri = uri
        self.host = host or LibvirtHost(uri)
        self.domains: dict[str, DomainWatch] = {}
        self.sessions: dict[str, Session] = {}
        self._changes: Observers[str] = Observers("domain_change")
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_lock = asyncio.Lock()
        self._closed = False
        #: why libvirt's connection ended, once it did (the domains are then unknown)
        self.lost: str | None = None

    def on_change(self, cb: Callable[[str], None]) -> Callable[[], None]:
        """``cb(name)`` when a domain appears, goes, or its state, jobs or graph change;
        ``cb("")`` when the list itself changed."""
        return self._changes.add(cb)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, list the domains and connect to the running ones (LibvirtError if the
        connection fails)."""
        await self.host.open()
        self._unsubscribe += [self.host.on_domain_event(self._on_domain_event),
                              self.host.on_connection_lost(self._on_lost)]
        await self.sync()

    async def close(self) -> None:
        self._closed = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for task in list(self._tasks):
            task.cancel()
        for name in list(self.sessions):
            await self._close_session(name)
        await self.host.close()

    # -- the domain list -----------------------------------------------------------------
    async def sync(self) -> None:
        """Read the domain list and open or close sessions to match it."""
        async with self._sync_lock:
            if self._closed or self.lost is not None:
                return
            listed = {d.name: d for d in await self.host.domains()}
            gone = [n for n in self.domains if n not in listed]
            for name in gone:
                await self._close_session(name)
                del self.domains[name]
            for info in listed.values():
                await self._update(info)
            if gone:
                self._changes.emit("")

    async def _update(self, info: DomainInfo) -> None:
        watch = self.domains.get(info.name)
        new = watch is None
        if watch is None:
            watch = self.domains[info.name] = DomainWatch(info.name, info.state)
        changed = new or watch.state != info.state
        watch.state = info.state
        if info.running and info.name not in self.sessions:
            await self._open_session(watch)
            changed = True
        elif not info.running and info.name in self.sessions:
            await self._close_session(info.name)
            changed = True
        if new:
            self._changes.emit("")
        if changed:
            self._changes.emit(info.name)

    async def _open_session(self, watch: DomainWatch) -> None:
        session = self.host.session(watch.name, auto_reconnect=False)
        self.sessions[watch.name] = session
        name = watch.name
        session.on_graph_changed(lambda _g: self._changes.emit(name))
        session.on_job_progress(lambda _j: self._changes.emit(name))
        try:
            await session.connect()
            watch.error = None
        except (ConnectFailed, SessionError, OSError) as exc:
            watch.error = f"not readable: {exc}"
            self.sessions.pop(name, None)
            await session.close()

    async def _close_session(self, name: str) -> None:
        session = self.sessions.pop(name, None)
        if session is not None:
            with contextlib.suppress(SessionError, OSError):
                await session.close()

    # -- libvirt's events ----------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_domain_event(self, event: DomainEvent) -> None:
        if not self._closed:
            self._spawn(self.sync())

    def _on_lost(self, reason: str) -> None:
        """libvirt's connection ended: every session with it (their bridges ran on it)."""
        if self._closed:
            return
        self.lost = reason
        for watch in self.domains.values():
            watch.error = f"connection to libvirt lost: {reason}"
        self._spawn(self._drop_sessions())

    async def _drop_sessions(self) -> None:
        for name in list(self.sessions):
            await self._close_session(name)
        self._changes.emit("")

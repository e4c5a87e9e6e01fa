"""QMP sockets of this host as VMs of the VM list (asyncio; Qt-free).

A QEMU or qemu-storage-daemon monitor (Proxmox's ``/var/run/qemu-server/ID.qmp``, a
``-qmp unix:…`` on a command line) is one more VM in the list: its session is kept
live by QEMU's own events (``poll_interval=None``) like a libvirt domain's. Its status
is the connection's (connected, lost) and its jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from engine.graph.snapshot import GraphSnapshot
from gui.session import Session, SessionError
from gui.session.observers import Observers
from gui.session.peers import remote_endpoint
from gui.vms.status import vm_status

GROUP = "QMP sockets"


class SocketWatch:
    """The QMP sockets opened in the VM list, one session each."""

    group = GROUP

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.errors: dict[str, str] = {}
        self._changes: Observers[str] = Observers("socket_change")

    def on_change(self, cb: Callable[[str], None]) -> Callable[[], None]:
        """``cb(address)`` when a socket's graph, jobs or connection change; ``cb("")``
        when the list changed."""
        return self._changes.add(cb)

    def entries(self) -> list[tuple[str, str]]:
        return [(address, address.removeprefix("unix:")) for address in self.sessions]

    async def add(self, address: str) -> None:
        """Open ``address``; a failure is kept as its status (the row stays, saying why)."""
        if address in self.sessions:
            return
        session = Session(remote_endpoint(address), auto_reconnect=False, poll_interval=None)
        self.sessions[address] = session
        session.on_graph_changed(lambda _g: self._changes.emit(address))
        session.on_job_progress(lambda _j: self._changes.emit(address))
        session.on_connection_state(lambda _s: self._changes.emit(address))
        self._changes.emit("")
        try:
            await session.connect()
            self.errors.pop(address, None)
        except (SessionError, OSError) as exc:
            self.errors[address] = str(exc)
        self._changes.emit(address)

    def status(self, address: str) -> str:
        session = self.sessions[address]
        if address in self.errors:
            return f"cannot connect: {self.errors[address]}"
        return vm_status(session.state.status.value, session)

    def snapshot(self, address: str) -> GraphSnapshot | None:
        session = self.sessions[address]
        return session.snapshot if session.connected else None

    async def close(self) -> None:
        for session in self.sessions.values():
            with contextlib.suppress(SessionError, OSError):
                await session.close()
        self.sessions.clear()

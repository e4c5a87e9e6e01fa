"""One libvirt connection (a URI) and what it offers: its domains, their state, events.

    host = LibvirtHost("qemu:///system")      # qemu:///session, qemu+ssh://HOST/system, …
    await host.open()
    for d in await host.domains():             # every domain, running ones first
        print(d.name, d.state, d.running)
    host.on_domain_event(cb)                   # cb(DomainEvent): started, stopped, …
    host.on_connection_lost(cb)                # cb(reason): libvirtd went away
    session = host.session("vm1")             # a gui.session.Session on vm1's QMP bridge
    description = await host.describe("vm1")  # disks from the live XML (engine.offline)
    await host.close()

A domain's session is an ordinary :class:`gui.session.Session` whose endpoint is a
socket factory: each connect opens a socket pair and serves its other end with a
:class:`~gui.libvirt.bridge.DomainBridge` on the libvirt thread. The session never
polls (``poll_interval=None``): QEMU's events, relayed by libvirt, wake its refresh,
and the bridge closes when the domain stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libvirt

from engine.offline.domain_xml import DomainDescription, parse_domain_xml
from gui.libvirt.bridge import DomainBridge, PassthroughGate, QmpEventHub, monitor_command
from gui.libvirt.errors import LibvirtError
from gui.libvirt.runtime import LibvirtRuntime, deliver, runtime
from gui.session import Endpoint, Session, socket_endpoint
from gui.session.observers import Observers

#: libvirt URI schemes of hypervisors whose domains are QEMU processes
QEMU_SCHEMES = ("qemu", "qemu+ssh", "qemu+tcp", "qemu+tls", "qemu+unix", "qemu+ext",
                "qemu+libssh", "qemu+libssh2")
#: schemes accepted for listing and tests (libvirt's built-in fake hypervisor)
OTHER_SCHEMES = ("test", "test+unix")


class DomainState(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUT_OFF = "shut off"
    OTHER = "other"


_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.SHUT_OFF,
    libvirt.VIR_DOMAIN_CRASHED: DomainState.SHUT_OFF,
}

_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """A domain as listed: running ones are the block-graph peers."""

    name: str
    uuid: str
    state: DomainState
    persistent: bool

    @property
    def running(self) -> bool:
        return self.state in (DomainState.RUNNING, DomainState.PAUSED)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A lifecycle change: ``kind`` is started, stopped, suspended, resumed, defined, …"""

    domain: str
    kind: str


@dataclass(frozen=True, slots=True)
class BlockJobEvent:
    """libvirt's block-job event (``VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2``): the disk target,
    the job type (``pull``, ``commit``, ``active-commit``, ``copy``) and its new status
    (``completed``, ``failed``, ``canceled``, ``ready``)."""

    domain: str
    disk: str
    job_type: str
    status: str


_JOB_TYPES = {
    libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_PULL: "pull",
    libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY: "copy",
    libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COMMIT: "commit",
    libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT: "active-commit",
}
_JOB_STATUS = {
    libvirt.VIR_DOMAIN_BLOCK_JOB_COMPLETED: "completed",
    libvirt.VIR_DOMAIN_BLOCK_JOB_FAILED: "failed",
    libvirt.VIR_DOMAIN_BLOCK_JOB_CANCELED: "canceled",
    libvirt.VIR_DOMAIN_BLOCK_JOB_READY: "ready",
}


_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "a connection error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "libvirtd closed the connection",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "libvirtd stopped answering (keepalive)",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed",
}


def is_libvirt_uri(address: str) -> bool:
    """True for ``qemu:///system``, ``qemu+ssh://host/system``, ``test:///default``…"""
    scheme, sep, _ = address.partition(":")
    return bool(sep) and scheme in QEMU_SCHEMES + OTHER_SCHEMES


def split_domain_address(address: str) -> tuple[str, str | None]:
    """``qemu:///system#vm1`` -> (``qemu:///system``, ``vm1``); no fragment -> (uri, None).

    libvirt URIs never carry a fragment, so ``#`` names the domain unambiguously; it is
    the form a domain's session uses as its label (and recent-connection entry).
    """
    uri, sep, name = address.partition("#")
    return uri, (name if sep and name else None)


def domain_address(uri: str, name: str) -> str:
    return f"{uri}#{name}"


class LibvirtHost:
    """A libvirt connection; see the module docstring."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.gate = PassthroughGate()
        self._rt: LibvirtRuntime = runtime()
        self._conn: libvirt.virConnect | None = None
        self._hub: QmpEventHub | None = None       # the bridges' QMP events (one callback)
        self._lifecycle_id: int | None = None
        self._job_id: int | None = None
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, Observers[Any]]] = []
        self._domain_events: Observers[DomainEvent] = Observers("domain_event")
        self._job_events: Observers[BlockJobEvent] = Observers("block_job")
        self._lost: Observers[str] = Observers("connection_lost")
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- connection --------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (read-write); raises LibvirtError with libvirt's reason."""
        if self._conn is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._conn = await self._rt.run(self._open)

    def _open(self) -> libvirt.virConnect:
        conn = libvirt.open(self.uri)
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(5, 3)      # notice a dead remote libvirtd
        self._lifecycle_id = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
        self._job_id = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, self._on_block_job, None)
        self._hub = QmpEventHub(conn)
        with contextlib.suppress(libvirt.libvirtError):
            conn.registerCloseCallback(self._on_close, None)
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._rt.run(self._close, conn)

    def _close(self, conn: libvirt.virConnect) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        for cb_id in (self._lifecycle_id, self._job_id):
            if cb_id is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.domainEventDeregisterAny(cb_id)
        self._lifecycle_id = self._job_id = None
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

    async def __aenter__(self) -> LibvirtHost:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connection(self) -> libvirt.virConnect:
        if self._conn is None:
            raise LibvirtError(f"not connected to {self.uri}")
        return self._conn

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Any libvirt call, made on the libvirt thread."""
        return await self._rt.run(fn, *args)

    # -- domains -------------------------------------------------------------------------
    async def domains(self) -> list[DomainInfo]:
        """Every domain (running and paused first, then by name)."""
        return await self._rt.run(self._domains)

    def _domains(self) -> list[DomainInfo]:
        out = []
        for dom in self.connection.listAllDomains(0):
            state, _reason = dom.state()
            out.append(DomainInfo(dom.name(), dom.UUIDString(),
                                  _STATES.get(state, DomainState.OTHER), bool(dom.isPersistent())))
        return sorted(out, key=lambda d: (not d.running, d.name))

    async def lookup(self, name: str) -> libvirt.virDomain:
        return await self._rt.run(self.connection.lookupByName, name)

    async def describe(self, name: str, *, inactive: bool = False) -> DomainDescription:
        """The domain's disks from its live XML (or the persistent one with ``inactive``)."""
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        xml = await self._rt.run(self._xml, name, flags)
        return parse_domain_xml(xml)

    def _xml(self, name: str, flags: int) -> str:
        return str(self.connection.lookupByName(name).XMLDesc(flags))

    # -- events --------------------------------------------------------------------------
    def on_domain_event(self, cb: Callable[[DomainEvent], None]) -> Callable[[], None]:
        """Lifecycle changes of every domain; callbacks run on the loop that opened the host."""
        return self._domain_events.add(cb)

    def on_block_job(self, cb: Callable[[BlockJobEvent], None]) -> Callable[[], None]:
        """libvirt's block-job events (after libvirt updated its XML for them)."""
        return self._job_events.add(cb)

    def on_connection_lost(self, cb: Callable[[str], None]) -> Callable[[], None]:
        """``cb(reason)`` when libvirt's connection ends other than by :meth:`close`
        (libvirtd went away, the keepalive timed out, a remote host dropped)."""
        return self._lost.add(cb)

    def _on_close(self, conn: Any, reason: int, opaque: Any) -> None:
        if self._loop is not None:
            deliver(self._loop, self._lost.emit, _CLOSE_REASONS.get(reason, f"reason {reason}"))

    def _on_lifecycle(self, conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        if self._loop is not None:
            deliver(self._loop, self._domain_events.emit,
                    DomainEvent(dom.name(), _EVENTS.get(event, str(event))))

    def _on_block_job(self, conn: Any, dom: Any, disk: str, job_type: int, status: int,
                      opaque: Any) -> None:
        if self._loop is not None:
            deliver(self._loop, self._job_events.emit,
                    BlockJobEvent(dom.name(), disk, _JOB_TYPES.get(job_type, str(job_type)),
                                  _JOB_STATUS.get(status, str(status))))

    # -- sessions ------------------------------------------------------------------------
    def endpoint(self, name: str) -> Endpoint:
        """The QMP endpoint of domain ``name`` (a socket factory; see the module docstring)."""
        return socket_endpoint(domain_address(self.uri, name), lambda: self._bridge(name))

    def session(self, name: str, **options: Any) -> Session:
        """A session on domain ``name``, kept live by events alone (no poll)."""
        options.setdefault("poll_interval", None)
        return Session(self.endpoint(name), **options)

    def _bridge(self, name: str) -> socket.socket:
        """Serve one QMP connection for ``name``; OSError (a connect failure) if it cannot."""
        try:
            dom, version = self._rt.submit(self._running_domain, name).result(timeout=60)
        except LibvirtError as exc:
            raise ConnectionRefusedError(exc.message) from None
        client, server = socket.socketpair()
        self._rt.spawn(DomainBridge(self.connection, dom, self.gate, self._hub).serve(
            server, version))
        return client

    def _running_domain(self, name: str) -> tuple[libvirt.virDomain, dict[str, Any]]:
        """The domain and QEMU's ``query-version`` (the greeting), or libvirt's refusal."""
        dom = self.connection.lookupByName(name)
        if not dom.isActive():
            raise LibvirtError(f"domain '{name}' is not running", call="virDomainIsActive")
        reply = monitor_command(dom, "query-version")
        if "return" not in reply:
            raise LibvirtError(str(reply.get("error", {}).get("desc", reply)),
                               call="query-version")
        return dom, reply["return"]

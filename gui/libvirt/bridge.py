"""A libvirt domain as a QMP endpoint: QMP in, libvirt's passthrough out, QMP events back.

Under libvirt, QEMU's monitor belongs to libvirtd; a second client cannot connect to it.
libvirt lets a client send QMP through its own connection instead
(``virDomainQemuMonitorCommand``, ``virsh qemu-monitor-command``) and receive QEMU's
events (``virConnectDomainQemuMonitorEventRegister``). :class:`DomainBridge` serves
one end of a socket pair with exactly that, speaking plain QMP — greeting, negotiation,
replies with the client's ids, events — so the session reads a libvirt domain with the
same QMP client, queries and event handling as any QEMU: one code path.

Commands that only read (``query-*``, ``x-debug-query-*``) pass through. libvirt marks a
domain *tainted* (``custom-monitor``, in the domain's log) the first time its monitor is
used this way, even for a query; harmless in itself, it tells support that someone
looked behind libvirt. Commands that change the domain are refused by default with a
QMP error explaining why — libvirt would not know of the change, its domain XML and its
block jobs would describe a graph that no longer exists — unless the
:class:`PassthroughGate` was opened for them after the user confirmed exactly that.
Edits go through libvirt's own APIs instead (:mod:`gui.libvirt.edits`).

Everything here runs on the libvirt thread (:mod:`gui.libvirt.runtime`): the
passthrough call, the event callbacks and the socket I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import libvirt
import libvirt_qemu

from engine.server.jsonstream import JSONParseError, JSONStream
from gui.libvirt.errors import LibvirtError

log = logging.getLogger(__name__)

READ_ONLY_PREFIXES = ("query-", "x-debug-query-")
#: the end of a domain's life as a QMP peer (the bridge closes, the session sees LOST)
_GONE = (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED,
         libvirt.VIR_DOMAIN_EVENT_UNDEFINED)


def refusal_text(command: str) -> str:
    """Why a changing command is not passed through (the QMP error's ``desc``)."""
    return (f"{command} is not sent to a libvirt domain behind libvirt's back: libvirt "
            "would not know of the change (its domain XML and block jobs would keep the "
            "old graph) and marks the domain tainted; use libvirt's own API for this edit, "
            "or confirm sending it through QMP passthrough")


class PassthroughGate:
    """Which commands that change a domain may pass through: none, until a confirmed
    edit opens the gate for its own commands (``with gate.allow(...)``)."""

    def __init__(self) -> None:
        self._allowed: dict[str, int] = {}

    def permits(self, command: str) -> bool:
        return command.startswith(READ_ONLY_PREFIXES) or self._allowed.get(command, 0) > 0

    @contextlib.contextmanager
    def allow(self, *commands: str) -> Iterator[None]:
        for c in commands:
            self._allowed[c] = self._allowed.get(c, 0) + 1
        try:
            yield
        finally:
            for c in commands:
                self._allowed[c] -= 1
                if not self._allowed[c]:
                    del self._allowed[c]


def monitor_command(dom: libvirt.virDomain, command: str,
                    arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One QMP command through libvirt; returns QEMU's reply (``return`` or ``error``).

    A QMP error from QEMU comes back as a reply; libvirt's own refusal (domain not
    running, no QEMU driver) raises LibvirtError in libvirt's words.
    """
    msg: dict[str, Any] = {"execute": command}
    if arguments is not None:
        msg["arguments"] = dict(arguments)
    try:
        reply = libvirt_qemu.qemuMonitorCommand(dom, json.dumps(msg), 0)
    except libvirt.libvirtError as exc:
        raise LibvirtError.from_libvirt(exc, "virDomainQemuMonitorCommand") from None
    data = json.loads(reply)
    data.pop("id", None)
    return data


#: what a QMP-event subscriber gets: (event, seconds, microseconds, details as JSON text)
QmpEventCallback = Callable[[str, int, int, "str | None"], None]


class QmpEventHub:
    """One QMP-event callback per libvirt connection, handing each event to the bridges
    of its domain (by UUID). Used on the libvirt thread only.

    Over a libvirtd connection, a QMP-event callback filtered to one domain leaves every
    later one on the same connection without events — with several domains open, only
    the first would stay live — and libvirt refuses a second unfiltered one with the
    same callback. So there is one, unfiltered, and the filtering is done here.
    """

    def __init__(self, conn: libvirt.virConnect) -> None:
        self.conn = conn
        self._id: int | None = None
        self._subscribers: dict[str, list[QmpEventCallback]] = {}

    def add(self, dom: libvirt.virDomain, cb: QmpEventCallback) -> Callable[[], None]:
        """Deliver ``dom``'s events to ``cb`` until the returned function is called."""
        if self._id is None:
            self._id = libvirt_qemu.qemuMonitorEventRegister(
                self.conn, None, None, self._dispatch, None, 0)
        subscribers = self._subscribers.setdefault(dom.UUIDString(), [])
        subscribers.append(cb)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                subscribers.remove(cb)
            if not any(self._subscribers.values()) and self._id is not None:
                cb_id, self._id = self._id, None
                with contextlib.suppress(libvirt.libvirtError):
                    libvirt_qemu.qemuMonitorEventDeregister(self.conn, cb_id)

        return remove

    def _dispatch(self, conn: Any, dom: Any, event: str, seconds: int, micros: int,
                  details: str | None, opaque: Any) -> None:
        for cb in list(self._subscribers.get(dom.UUIDString(), ())):
            cb(event, seconds, micros, details)


class DomainBridge:
    """Serves QMP for one domain on one socket (see the module docstring)."""

    def __init__(self, conn: libvirt.virConnect, dom: libvirt.virDomain,
                 gate: PassthroughGate, hub: QmpEventHub | None = None) -> None:
        self.conn = conn
        self.dom = dom
        self.gate = gate
        self.hub = hub or QmpEventHub(conn)
        self._stop_events: Callable[[], None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._callbacks: list[tuple[str, int]] = []
        self._closed = asyncio.Event()
        self._name = dom.name()

    # -- runs on the libvirt thread ----------------------------------------------------
    async def serve(self, sock: socket.socket, version: Mapping[str, Any]) -> None:
        """Greet with ``version`` (QEMU's ``query-version``), then answer commands until
        the client or the domain goes away."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        self._writer = writer
        try:
            self._register()
            self._send({"QMP": {"version": dict(version), "capabilities": []}})
            stream = JSONStream()
            while not self._closed.is_set():
                read = asyncio.ensure_future(reader.read(65536))
                closed = asyncio.ensure_future(self._closed.wait())
                done, _ = await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    break
                closed.cancel()
                data = read.result()
                if not data:
                    break
                for message in stream.feed(data):
                    self._answer(message)
                await writer.drain()
        except LibvirtError as exc:
            log.info("bridge for %s: %s", self._name, exc)
        except libvirt.libvirtError as exc:
            # the libvirt connection itself failed (dropped, keepalive): the client sees
            # the socket close, as with a QEMU that went away, and the reason is logged
            log.warning("bridge for %s: libvirt: %s", self._name, exc)
        except (ConnectionError, OSError):
            pass
        finally:
            self._unregister()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, message: Any) -> None:
        if isinstance(message, JSONParseError):
            self._send({"error": {"class": "GenericError", "desc": message.desc}})
            return
        if not isinstance(message, dict):
            self._send({"error": {"class": "GenericError",
                                  "desc": "QMP input must be a JSON object"}})
            return
        msg_id = message.get("id")
        command = message.get("execute")
        if not isinstance(command, str):
            reply: dict[str, Any] = {"error": {"class": "GenericError",
                                              "desc": "QMP input lacks member 'execute'"}}
        elif command == "qmp_capabilities":
            reply = {"return": {}}      # libvirt negotiated with QEMU long ago
        else:
            reply = self._reply_for(command, message.get("arguments"))
        if msg_id is not None:
            reply["id"] = msg_id
        self._send(reply)

    def _reply_for(self, command: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        if not self.gate.permits(command):
            return {"error": {"class": "GenericError", "desc": refusal_text(command)}}
        try:
            return monitor_command(self.dom, command, arguments)
        except LibvirtError as exc:
            try:
                active = self.dom.isActive()
            except libvirt.libvirtError:
                active = False          # the connection is gone too
            if not active:
                self._closed.set()
            return {"error": {"class": "GenericError", "desc": exc.message}}

    def _send(self, message: Mapping[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message).encode() + b"\r\n")

    # -- libvirt's events (callbacks on the libvirt thread) ------------------------------
    def _register(self) -> None:
        self._stop_events = self.hub.add(self.dom, self._on_qmp_event)
        life_id = self.conn.domainEventRegisterAny(
            self.dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
        self._callbacks.append(("domain", life_id))

    def _unregister(self) -> None:
        if self._stop_events is not None:
            self._stop_events()
            self._stop_events = None
        for _kind, cb_id in self._callbacks:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.domainEventDeregisterAny(cb_id)
        self._callbacks = []

    def _on_qmp_event(self, event: str, seconds: int, micros: int, details: str | None) -> None:
        data = json.loads(details) if details else {}
        self._send({"event": event, "data": data,
                    "timestamp": {"seconds": seconds, "microseconds": micros}})

    def _on_lifecycle(self, conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        if event in _GONE:
            self._closed.set()

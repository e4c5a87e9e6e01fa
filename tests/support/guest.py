"""Guest I/O on a node of either peer: what a VM's disk would read and write.

qemu-storage-daemon has no guest, so a node is reached through a short-lived NBD
export (``nbd-server-start`` once, ``block-export-add``, a plain NBD client on the export,
``block-export-del`` and its ``BLOCK_EXPORT_DELETED`` event): the export is gone again
when the call returns, so the graphs of the two peers stay comparable. The engine's
node is read and written in process, through the node's own I/O (the same data path
its commands use).

Use as a :class:`~tests.support.differential.Step`'s ``after`` hook, which runs on
each peer::

    Step("query-version", None, compare_graph=False,
         after=guest_write("top", 0, 0x5a, 65536))
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from tests.support.differential import EnginePeer
from tests.support.qemu import QemuStorageDaemon

_EXPORT = "guest"


def _export(qsd: QemuStorageDaemon, node: str, writable: bool) -> None:
    """Export ``node`` over NBD (under its own name)."""
    path = str(qsd.workdir / "nbd.sock")
    if not getattr(qsd, "_nbd_started", False):
        reply = qsd.execute("nbd-server-start", {"addr": {"type": "unix", "data": {
                                                          "path": path}}})
        assert "return" in reply, reply
        qsd._nbd_started = True          # type: ignore[attr-defined]
    reply = qsd.execute("block-export-add", {"type": "nbd", "id": _EXPORT,
                                             "node-name": node, "writable": writable})
    assert "return" in reply, reply


def _unexport(qsd: QemuStorageDaemon) -> None:
    reply = qsd.execute("block-export-del", {"id": _EXPORT})
    assert "return" in reply, reply
    deadline = time.monotonic() + 20
    kept, qsd.held_events = qsd.held_events, []     # other events stay for the test
    while time.monotonic() < deadline:
        events = qsd.events(wait=1.0)
        kept.extend(e for e in events if not e["event"].startswith("BLOCK_EXPORT"))
        if any(e["event"] == "BLOCK_EXPORT_DELETED" for e in events):
            qsd.held_events = kept
            return
    raise AssertionError("the NBD export was not deleted")


class _NbdClient:
    """A minimal NBD client (fixed newstyle, ``NBD_OPT_GO``, simple replies only).

    qemu-io would negotiate structured replies, and QEMU's NBD server then answers
    the ranges that block status calls zero with holes, without reading them: no
    guest read would reach a copy-on-read filter there. A client without structured
    replies makes the server read every byte, as a guest's read does."""

    def __init__(self, path: str, export: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        magic, opt_magic, _flags = struct.unpack(">8s8sH", self._recv(18))
        assert magic == b"NBDMAGIC" and opt_magic == b"IHAVEOPT", (magic, opt_magic)
        self.sock.sendall(struct.pack(">I", 1 | 2))          # fixed newstyle, no zeroes
        name = export.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self.sock.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(data)) + data)   # GO
        while True:
            _magic, _opt, reply, length = struct.unpack(">QIII", self._recv(20))
            body = self._recv(length)
            if reply == 1:                                   # ACK: transmission starts
                break
            assert reply == 3, f"NBD option refused: {reply:#x} {body!r}"
        self.handle = 0

    def _recv(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("NBD server closed the connection")
            out += chunk
        return bytes(out)

    def _request(self, kind: int, offset: int, length: int, payload: bytes = b"") -> bytes:
        self.handle += 1
        self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, kind, self.handle, offset,
                                      length) + payload)
        magic, error, handle = struct.unpack(">IIQ", self._recv(16))
        assert magic == 0x67446698 and handle == self.handle, (magic, handle)
        assert error == 0, f"NBD request {kind} failed: errno {error}"
        return self._recv(length) if kind == 0 else b""

    def read(self, offset: int, length: int) -> bytes:
        return self._request(0, offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._request(1, offset, len(data), data)
        self._request(3, 0, 0)                               # flush

    def close(self) -> None:
        self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))   # disconnect
        self.sock.close()


def _nbd(qsd: QemuStorageDaemon, node: str, writable: bool,
         action: Callable[[_NbdClient], bytes]) -> bytes:
    _export(qsd, node, writable)
    try:
        client = _NbdClient(str(qsd.workdir / "nbd.sock"), node)
        try:
            return action(client)
        finally:
            client.close()
    finally:
        _unexport(qsd)


def _engine_io(peer: EnginePeer, node: str) -> Any:
    io = peer.engine.graph.nodes[node].io
    assert io is not None
    return io


def read(peer: Any, node: str, offset: int, length: int) -> bytes:
    """``length`` guest bytes of ``node`` at ``offset``, read as a guest reads them."""
    if isinstance(peer, EnginePeer):
        buf = bytearray(length)
        with peer.engine.lock, peer.engine.graph.io.lock:
            _engine_io(peer, node).readinto(offset, memoryview(buf))
        return bytes(buf)
    return _nbd(peer, node, False, lambda client: client.read(offset, length))


def write(peer: Any, node: str, offset: int, pattern: int, length: int) -> None:
    """Write ``length`` bytes of ``pattern`` at ``offset`` of ``node``, then flush."""
    write_data(peer, node, offset, bytes([pattern]) * length)


def write_data(peer: Any, node: str, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` of ``node``, then flush."""
    if isinstance(peer, EnginePeer):
        with peer.engine.lock, peer.engine.graph.io.lock:
            io = _engine_io(peer, node)
            io.write(offset, data)
            io.flush()
        return
    _nbd(peer, node, True, lambda client: client.write(offset, data) or b"")


def guest_write(node: str, offset: int, pattern: int, length: int) -> Callable[[Any], None]:
    """A Step ``after`` hook: :func:`write` on each peer."""
    return lambda peer: write(peer, node, offset, pattern, length)


class Reads:
    """Collects what each peer read, so a test can assert both read the same bytes."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def hook(self, node: str, offset: int, length: int) -> Callable[[Any], None]:
        return lambda peer: self.seen.append(read(peer, node, offset, length))

    def agree(self) -> bytes:
        """The bytes every peer read (asserts they are the same; two peers per read)."""
        assert self.seen and len(self.seen) % 2 == 0, len(self.seen)
        for a, b in zip(self.seen[::2], self.seen[1::2], strict=True):
            assert a == b, "the peers read different bytes"
        return self.seen[-1]

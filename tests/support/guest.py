"""Guest I/O on a node of either peer: what a VM's disk would read and write.

qemu-storage-daemon has no guest, so a node is reached through a short-lived NBD
export (``nbd-server-start`` once, ``block-export-add``, ``qemu-io`` on the export,
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

import re
import time
from collections.abc import Callable
from typing import Any

from tests.support.differential import EnginePeer
from tests.support.qemu import QEMU_IO, QemuStorageDaemon, run

_EXPORT = "guest"
_HEX = re.compile(r"^[0-9a-f]{8}:  ((?:[0-9a-f]{2} ){1,16})")


def _export(qsd: QemuStorageDaemon, node: str, writable: bool) -> str:
    """Export ``node`` over NBD; return the export's URI."""
    socket = str(qsd.workdir / "nbd.sock")
    if not getattr(qsd, "_nbd_started", False):
        reply = qsd.execute("nbd-server-start", {"addr": {"type": "unix", "data": {
                                                          "path": socket}}})
        assert "return" in reply, reply
        qsd._nbd_started = True          # type: ignore[attr-defined]
    reply = qsd.execute("block-export-add", {"type": "nbd", "id": _EXPORT,
                                             "node-name": node, "writable": writable})
    assert "return" in reply, reply
    return f"nbd+unix:///{node}?socket={socket}"


def _unexport(qsd: QemuStorageDaemon) -> None:
    reply = qsd.execute("block-export-del", {"id": _EXPORT})
    assert "return" in reply, reply
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(e["event"] == "BLOCK_EXPORT_DELETED" for e in qsd.events(wait=1.0)):
            return
    raise AssertionError("the NBD export was not deleted")


def _qemu_io(qsd: QemuStorageDaemon, node: str, command: str, writable: bool) -> str:
    uri = _export(qsd, node, writable)
    try:
        args = ["-f", "raw", *([] if writable else ["-r"]), "-c", command, uri]
        return run(QEMU_IO, *args).stdout
    finally:
        _unexport(qsd)


def _engine_io(peer: EnginePeer, node: str) -> Any:
    io = peer.engine.graph.nodes[node].io
    assert io is not None
    return io


def read(peer: Any, node: str, offset: int, length: int) -> bytes:
    """``length`` guest bytes of ``node`` at ``offset`` (keep it small: a hex dump)."""
    if isinstance(peer, EnginePeer):
        buf = bytearray(length)
        with peer.engine.lock, peer.engine.graph.io.lock:
            _engine_io(peer, node).readinto(offset, memoryview(buf))
        return bytes(buf)
    out = bytearray()
    for line in _qemu_io(peer, node, f"read -v {offset} {length}", False).splitlines():
        m = _HEX.match(line)
        if m:
            out += bytes.fromhex(m.group(1).replace(" ", ""))
    assert len(out) == length, f"qemu-io read {len(out)} of {length} bytes"
    return bytes(out)


def write(peer: Any, node: str, offset: int, pattern: int, length: int) -> None:
    """Write ``length`` bytes of ``pattern`` at ``offset`` of ``node``, then flush."""
    if isinstance(peer, EnginePeer):
        with peer.engine.lock, peer.engine.graph.io.lock:
            io = _engine_io(peer, node)
            io.write(offset, bytes([pattern]) * length)
            io.flush()
        return
    _qemu_io(peer, node, f"write -P {pattern} {offset} {length}", True)


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

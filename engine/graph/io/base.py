"""The node I/O interface, the context it shares with its graph, and a node as bytes.

:class:`NodeIO` is what a driver does with a node: its length, its guest bytes
(``readinto``, falling through to whatever lies below), writes, its own layer's
allocation (``block_status``), flushes and resizes. :class:`NodeStore` presents a
node as a byte store, so a format driver can sit on any node; a plain ``file`` node
hands out its host file instead (descriptor fast paths).

Nodes are duck-typed here (this package sits below the graph model): a node has
``name``, ``driver``, ``read_only``, ``options``, ``children`` (role -> link with
``.child``) and ``io``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.formats.image import Extent, Image, zero_fill
from engine.formats.store import ByteStore
from engine.graph.faults import FaultInjector

Node = Any   # engine.graph.model.Node (duck-typed: this package sits below the model)


class IOContext:
    """What every node's I/O shares with its graph.

    ``epoch`` grows by one with every change of a child link: I/O objects cache the
    children they resolved and look again when it moved. ``lock`` is held by every
    graph transaction and around every job request, so a request never sees half a
    graph change (QEMU drains the nodes a reopen touches). ``faults``: the engine's
    injected I/O errors (its ``blkdebug``).
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.lock = threading.RLock()
        self.faults = FaultInjector()

    def changed(self) -> None:
        self.epoch += 1


@dataclass(frozen=True)
class Reopen:
    """A prepared change of a node's read-only state: ``commit`` it or ``abort`` it."""

    commit: Callable[[], None]
    abort: Callable[[], None]


class NodeIO:
    """A node's driver instance. Subclasses implement the ``_`` methods."""

    #: the host file whose data this layer holds, for fault rules and messages
    data_path: str | None = None

    def __init__(self, node: Node, ctx: IOContext) -> None:
        self.node = node
        self.ctx = ctx
        self._epoch = -1

    # -- children ----------------------------------------------------------------------
    def child_io(self, role: str) -> NodeIO | None:
        link = self.node.children.get(role)
        return link.child.io if link is not None else None

    def refresh(self) -> None:
        """Look up the children again if the graph changed (cheap when it did not)."""
        if self._epoch != self.ctx.epoch:
            self._epoch = self.ctx.epoch
            self.resolve()

    def resolve(self) -> None:
        """Re-resolve cached children (called after a graph change)."""

    # -- sizes ---------------------------------------------------------------------------
    def length(self) -> int:
        raise NotImplementedError

    def cluster_size(self) -> int | None:
        return None

    @property
    def image(self) -> Image | None:
        """The format image this node interprets, if any (for header facts)."""
        return None

    # -- data ------------------------------------------------------------------------------
    def readinto(self, offset: int, view: memoryview) -> None:
        """Guest bytes at ``offset``; past the node's end reads zeros."""
        self.refresh()
        if self.ctx.faults.active and self.data_path is not None:
            self._check_read_faults(offset, len(view))
        end = self.length()
        inside = max(0, min(len(view), end - offset))
        if inside < len(view):
            zero_fill(view[inside:])
        if inside:
            self._readinto(offset, view[:inside])

    def _check_read_faults(self, offset: int, length: int) -> None:
        # like blkdebug under a format: only what this layer stores as data is read
        limit = min(offset + length, self.length())
        if limit > offset and self.data_path is not None:
            for ext in self._block_status(offset, limit - offset):
                if ext.state == "data":
                    self.ctx.faults.check(self.data_path, "read", ext.start, ext.length)

    def _readinto(self, offset: int, view: memoryview) -> None:
        raise NotImplementedError

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.refresh()
        if self.ctx.faults.active and self.data_path is not None:
            self.ctx.faults.check(self.data_path, "write", offset, len(data))
        self._write(offset, data)

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def write_zeroes(self, offset: int, length: int) -> None:
        self.refresh()
        if self.ctx.faults.active and self.data_path is not None:
            self.ctx.faults.check(self.data_path, "write", offset, length)
        self._write_zeroes(offset, length)

    def _write_zeroes(self, offset: int, length: int) -> None:
        self._write(offset, bytes(length))

    def block_status(self, offset: int, length: int) -> list[Extent]:
        """This layer's allocation over ``[offset, offset+length)`` (inside the node)."""
        self.refresh()
        return self._block_status(offset, length)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        return [Extent(offset, length, "data")]

    def flush(self) -> None:
        self.refresh()
        self._flush()

    def _flush(self) -> None:
        for link in self.node.children.values():
            if link.role != "backing":
                link.child.io.flush()

    def truncate(self, size: int) -> None:
        raise OSError(95, "Image format driver does not support resize")

    def begin_write_back(self) -> None:
        """Bulk writes follow (a job's target): metadata may wait for the next flush."""

    def end_write_back(self) -> None:
        """Publish what waits; never raises."""

    # -- lifecycle -------------------------------------------------------------------------
    def host_name(self) -> str | None:
        """The host file this node is, if it is one (a ``file`` node)."""
        return None

    def store(self) -> ByteStore:
        """This node's bytes for a format parent."""
        return NodeStore(self)

    def set_writable(self, writable: bool) -> Reopen | None:
        """Prepare a reopen read-write or read-only (None: nothing to do here).

        Raises OSError (or an ImageError) when the node cannot change; nothing has
        changed then.
        """
        return None

    def actual_size(self) -> int:
        """Host bytes allocated for this node's data (``actual-size``)."""
        link = self.node.children.get("file")
        return link.child.io.actual_size() if link is not None else 0

    def close(self) -> None:
        """Release what the node holds (files, images)."""


class NodeStore:
    """A node's guest bytes as a byte store (for a format driver above it)."""

    fd: int | None = None

    def __init__(self, io: NodeIO) -> None:
        self.io = io
        self.name = io.node.name

    @property
    def writable(self) -> bool:
        return not self.io.node.read_only

    def size(self) -> int:
        self.io.refresh()
        return self.io.length()

    def allocated(self) -> int:
        return self.io.actual_size()

    def pread(self, length: int, offset: int) -> bytes:
        end = min(offset + length, self.size())
        if end <= offset:
            return b""
        buf = bytearray(end - offset)
        self.io.readinto(offset, memoryview(buf))
        return bytes(buf)

    def preadv(self, buffers: Sequence[memoryview], offset: int) -> int:
        done = 0
        size = self.size()
        for buf in buffers:
            n = max(0, min(len(buf), size - offset - done))
            if n:
                self.io.readinto(offset + done, buf[:n])
            done += n
            if n < len(buf):
                break
        return done

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        self.io.write(offset, data)
        return len(data)

    def pwritev(self, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
        done = 0
        for buf in buffers:
            self.io.write(offset + done, buf)
            done += len(buf)
        return done

    def sync(self) -> None:
        self.io.flush()

    def truncate(self, length: int) -> None:
        self.io.truncate(length)

    def start_writeback(self, offset: int, length: int) -> None:
        """Nothing to hint: the node below decides."""

    def data_runs(self, offset: int, end: int) -> list[tuple[int, int, bool]]:
        return [(e.start, e.length, e.state != "zero")
                for e in self.io.block_status(offset, end - offset)]

    def direct_fd(self) -> int:
        raise OSError(95, "not a host file")

    def close(self) -> None:
        """The node owns what lies below."""

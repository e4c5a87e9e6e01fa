"""The node I/O interface and a node as bytes (what it shares with its graph:
:mod:`engine.graph.io.context`).

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

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.formats.image import Extent, Image, zero_fill
from engine.formats.store import ByteStore
from engine.graph.io.context import IOContext
from engine.graph.io.detect_zeroes import all_zero, detects_zeroes

Node = Any   # engine.graph.model.Node (duck-typed: this package sits below the model)


@dataclass(frozen=True)
class Reopen:
    """A prepared change of a node's read-only state: ``commit`` it or ``abort`` it."""

    commit: Callable[[], None]
    abort: Callable[[], None]


#: a read still to do: this node's bytes at this offset into this view
Pending = tuple["NodeIO", int, memoryview]


class NodeIO:
    """A node's driver instance.

    Requests never recurse down the graph (chains may be thousands of nodes deep): a
    node that maps requests one to one onto a child (a filter, a raw window) says so in
    :meth:`passthrough`, a format hands the reads it leaves to its backing back as
    :data:`Pending` reads, and the public methods here walk those with a work list.
    Subclasses implement the ``_`` methods for what they do themselves.
    """

    #: the host file whose data this layer holds, for fault rules and messages
    data_path: str | None = None
    #: the node down to which this node froze the links below it when it opened
    #: (``copy-on-read``'s ``bottom``); they thaw when the node goes
    frozen_base: Node | None = None
    #: writes passing through call :meth:`_on_request` (a filter that acts on them)
    hooks_requests: bool = False
    #: reads past the node's length must be cut here (its length is its own, not its
    #: child's): formats and windows; plain pass-through filters leave it to the child
    clamps: bool = True
    #: told ``(offset, length)`` after every write that passed through this node (a
    #: mirror job's ``mirror_top`` marks the range dirty, to copy it again)
    write_observer: Callable[[int, int], None] | None = None

    def __init__(self, node: Node, ctx: IOContext) -> None:
        self.node = node
        self.ctx = ctx
        self._epoch = -1

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        """QEMU's refusal of the driver's own options at open or reopen, if any (checked
        once the node's file child is attached, before the driver instance is made)."""
        return None

    @classmethod
    def child_error(cls, node: Node) -> str | None:
        """QEMU's refusal of the node's children at open, if any (checked after
        :meth:`option_error`, the children attached)."""
        return None

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

    def passthrough(self) -> tuple[NodeIO, int] | None:
        """(child, offset) when a request at *n* is the child's request at offset + *n*."""
        return None

    def read_passthrough(self) -> tuple[NodeIO, int] | None:
        """:meth:`passthrough` for reads (a node that acts on reads answers None and
        does its work in :meth:`_read_layer`)."""
        return self.passthrough()

    def _bottom(self, offset: int) -> tuple[NodeIO, int, bool]:
        """Down the pass-through nodes: (the node that answers, its offset, whether a
        raw window was crossed)."""
        io: NodeIO = self
        crossed = False
        while True:
            io.refresh()
            below = io.passthrough()
            if below is None:
                return io, offset, crossed
            crossed = crossed or io.node.driver == "raw"
            io, offset = below[0], offset + below[1]

    # -- sizes ---------------------------------------------------------------------------
    def length(self) -> int:
        """The node's size (through any number of pass-through nodes, iteratively)."""
        chain: list[NodeIO] = []
        io: NodeIO = self
        while True:
            io.refresh()
            below = io.passthrough()
            if below is None:
                break
            chain.append(io)
            io = below[0]
        size = io._own_length()
        for upper in reversed(chain):
            size = upper._length_from(size)
        return size

    def _own_length(self) -> int:
        raise NotImplementedError

    def _length_from(self, child_length: int) -> int:
        """A pass-through node's length given its child's."""
        return child_length

    def cluster_size(self) -> int | None:
        io, _, _ = self._bottom(0)
        return io._own_cluster_size()

    def _own_cluster_size(self) -> int | None:
        return None

    @property
    def image(self) -> Image | None:
        """The format image this node interprets, if any (for header facts)."""
        return None

    # -- data ------------------------------------------------------------------------------
    def readinto(self, offset: int, view: memoryview) -> None:
        """Guest bytes at ``offset``; past the node's end reads zeros."""
        work: list[Pending] = [(self, offset, view)]
        while work:
            io, off, v = work.pop()
            io.refresh()
            if io.clamps:
                inside = max(0, min(len(v), io.length() - off))
                if inside < len(v):
                    zero_fill(v[inside:])
                if not inside:
                    continue
                v = v[:inside]
            if io.ctx.faults.active and io.data_path is not None:
                io._check_read_faults(off, len(v))
            below = io.read_passthrough()
            if below is not None:
                work.append((below[0], off + below[1], v))
            else:
                work.extend(io._read_layer(off, v))

    def _check_read_faults(self, offset: int, length: int) -> None:
        # like blkdebug under a format: only what this layer stores as data is read
        limit = min(offset + length, self.length())
        if limit > offset and self.data_path is not None:
            for ext in self.block_status(offset, limit - offset):
                if ext.state == "data":
                    self.ctx.faults.check(self.data_path, "read", ext.start, ext.length)

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        """Fill what this layer defines; return the reads left to the layers below."""
        raise NotImplementedError

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        observers: list[tuple[NodeIO, int]] = []
        io, off, zeroes = self._writer(offset, len(data), "write", "write_passthrough",
                                       observers, data)
        if zeroes is None:
            io._write(off, data)
        else:
            io._write_zeroes(off, len(data), zeroes)
        _tell(observers, len(data))

    def write_begin(self, offset: int, data: bytes | bytearray | memoryview,
                    ) -> Callable[[], None] | None:
        """:meth:`write`, but a format node in write-back mode may map the data at once
        and leave writing it to the returned callable — run it on another thread, with
        no lock held; the node's next request waits for it. None: written already.
        Nodes that watch writes are told at once, as the guest view changed here."""
        observers: list[tuple[NodeIO, int]] = []
        io, off, zeroes = self._writer(offset, len(data), "write", "write_passthrough",
                                       observers, data)
        finish = None
        if zeroes is None:
            finish = io._write_begin(off, data)
        else:   # detect-zeroes made it a zero write
            io._write_zeroes(off, len(data), zeroes)
        _tell(observers, len(data))
        return finish

    def _write_begin(self, offset: int, data: bytes | bytearray | memoryview,
                     ) -> Callable[[], None] | None:
        self._write(offset, data)
        return None

    def write_zeroes(self, offset: int, length: int, *, unmap: bool = False) -> None:
        """Make the range read as zeros; ``unmap``: storage may be given back (QEMU's
        BDRV_REQ_MAY_UNMAP)."""
        observers: list[tuple[NodeIO, int]] = []
        io, off, _ = self._writer(offset, length, "write", "zeroes_passthrough", observers)
        io._write_zeroes(off, length, unmap)
        _tell(observers, length)

    def write_compressed(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """A compressed write (QEMU's BDRV_REQ_WRITE_COMPRESSED): passed down the filters
        that pass it, done by a driver that compresses, refused (ENOTSUP) by any other."""
        observers: list[tuple[NodeIO, int]] = []
        io, off, _ = self._writer(offset, len(data), "write", "compressed_passthrough",
                                  observers)
        io._write_compressed(off, data)
        _tell(observers, len(data))

    def discard(self, offset: int, length: int) -> None:
        """A discard: nothing unless the node it enters has ``discard=unmap`` (as in
        QEMU), then down the pass-through nodes to a driver, which may ignore it."""
        if getattr(self.node, "discard", "ignore") != "unmap":
            return
        io: NodeIO = self
        while True:
            io.refresh()
            io.node.note_write(offset, length)
            below = io.passthrough()
            if below is None:
                break
            io, offset = below[0], offset + below[1]
        io._discard(offset, length)

    def _discard(self, offset: int, length: int) -> None:
        """Discard here (drivers that give storage back override this)."""

    def _writer(self, offset: int, length: int, op: str, step: str,
                observers: list[tuple[NodeIO, int]],
                data: bytes | bytearray | memoryview | None = None,
                ) -> tuple[NodeIO, int, bool | None]:
        """Down the pass-through nodes (``step``: which pass it on) to the writer, faults
        checked, observers noted; a node with ``detect-zeroes`` makes an all-zero ``data``
        write a zero write from there down (third value: its unmap; None: data)."""
        iotype = "write-zeroes" if step == "zeroes_passthrough" else "write"
        zeroes: bool | None = None
        io: NodeIO = self
        while True:
            io.refresh()
            if data is not None and detects_zeroes(io.node) and all_zero(data):
                step, iotype, data = "zeroes_passthrough", "write-zeroes", None
                zeroes = io.node.detect_zeroes == "unmap"
            io.node.note_write(offset, length)
            if io.hooks_requests:
                io._on_request(iotype, offset, length)
            if io.ctx.faults.active and io.data_path is not None:
                io.ctx.faults.check(io.data_path, op, offset, length)
            if io.write_observer is not None:
                observers.append((io, offset))
            below = getattr(io, step)()
            if below is None:
                return io, offset, zeroes
            io, offset = below[0], offset + below[1]

    def _on_request(self, iotype: str, offset: int, length: int) -> None:
        """A write request (``iotype`` ``write`` or ``write-zeroes``) passes this node:
        act on it or raise (only with :attr:`hooks_requests`)."""

    def write_passthrough(self) -> tuple[NodeIO, int] | None:
        """:meth:`passthrough` for data writes (a node that acts on writes answers None
        and does its work in :meth:`_write`)."""
        return self.passthrough()

    def zeroes_passthrough(self) -> tuple[NodeIO, int] | None:
        """:meth:`passthrough` for zero writes."""
        return self.passthrough()

    def compressed_passthrough(self) -> tuple[NodeIO, int] | None:
        """:meth:`passthrough` for compressed writes: only filters that forward them
        (QEMU's throttle and copy-on-read) answer their child."""
        return None

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        self._write(offset, bytes(length))

    def _write_compressed(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

    def block_status(self, offset: int, length: int) -> list[Extent]:
        """This layer's allocation over ``[offset, offset+length)`` (inside the node).

        A raw window is data wherever the node below leaves a range to its backing:
        the window's bytes are the node's guest bytes."""
        io, off, crossed = self._bottom(offset)
        shift = off - offset
        out = []
        for ext in io._block_status(off, length):
            state = "data" if crossed and ext.state == "unallocated" else ext.state
            out.append(Extent(ext.start - shift, ext.length, state,
                              ext.offset, ext.compressed))
        return out

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        return [Extent(offset, length, "data")]

    def flush(self) -> None:
        """Flush this node and everything it stores data in (not its backing), parents
        before their children."""
        work: list[NodeIO] = [self]
        seen: set[int] = set()
        while work:
            io = work.pop()
            if id(io) in seen:
                continue
            seen.add(id(io))
            io.refresh()
            io._flush_own()
            work.extend(link.child.io for role, link in reversed(io.node.children.items())
                        if role != "backing" and link.child.io is not None)

    def _flush_own(self) -> None:
        """Make what this node itself wrote durable."""

    def debug_event(self, name: str) -> None:
        """An event (QEMU's BlkdebugEvent) the node above announces to this one: only a
        ``blkdebug`` node acts on it."""

    def truncate(self, size: int) -> None:
        io: NodeIO = self
        while True:
            io.refresh()
            below = io._truncate_through(size)
            if below is None:
                return
            io, size = below

    def _truncate_through(self, size: int) -> tuple[NodeIO, int] | None:
        """Resize: do it here (None), or hand the new size to the node below."""
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

    def actual_size(self) -> int | None:
        """Host bytes allocated for this node's data (``actual-size``; None: QEMU cannot
        tell, as for a driver opened by file name that does not say, like ``blkdebug``)."""
        io: NodeIO | None = self
        while io is not None:
            own = io._own_actual_size()
            if own is not None:
                return own
            if io.node.spec.file_open:
                return None
            link = io.node.children.get("file") or (
                io.node.children.get(io.node.spec.filtered_role or "")
                if io.node.spec.filtered_role else None)
            io = link.child.io if link is not None else None
        return 0

    def _own_actual_size(self) -> int | None:
        """The allocation of this node's own host file (None: look below)."""
        return None

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
        return self.io.actual_size() or 0

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


def _tell(observers: list[tuple[NodeIO, int]], length: int) -> None:
    """Tell the nodes that watch writes (a mirror's filter) what was written below them."""
    for io, offset in observers:
        observer = io.write_observer
        if observer is not None:
            observer(offset, length)

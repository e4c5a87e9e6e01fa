"""``blkdebug``: a filter over its ``image`` child that fails and suspends requests.

Requests pass through to ``image`` unless a rule fails them
(:mod:`engine.graph.blkdebug` holds the rules). The events the rules wait for come
from two places, as in QEMU:

* the format driver above the node, on its ``file`` child: ``read_aio`` before a
  guest-data read, ``write_aio`` before a guest-data write (a ``raw`` parent's every
  request is guest data; a ``qcow2`` parent's metadata goes through
  :meth:`BlkdebugStore.pread` and ``pwrite`` and fires neither), and a qcow2 parent's
  metadata events (``l2_load``, ``l2_update``, ``l1_update``, ``cluster_alloc``,
  ``refblock_*``, ``cow_read``, ``read_backing_aio``, ``flush_to_os`` …, announced
  through :meth:`BlkdebugStore.debug_event` where the engine's qcow2 code does what
  QEMU's does at that event);
* the block layer, for every request the node receives: ``pwritev`` /
  ``pwritev_zero`` before a write and ``pwritev_done`` after it, ``pwritev_rmw_*``
  around the reads that pad an unaligned write.

The block layer also shapes the requests the rules see: widened to ``align``, cut
into pieces of at most ``max-transfer`` (each piece checked on its own, so a write
that fails in its third piece has written the first two), as QEMU's does.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from engine.formats.store import ByteStore
from engine.graph.blkdebug import BlkdebugError, BlkdebugState, build_state, check_limits
from engine.graph.io.base import Node, NodeIO, NodeStore, Pending
from engine.graph.io.context import IOContext
from engine.graph.io.filters import FilterIO

#: QEMU's largest request (INT_MAX): the transfer limit without ``max-transfer``
_INT_MAX = (1 << 31) - 1


class BlkdebugIO(FilterIO):
    """The ``blkdebug`` filter (see the module doc)."""

    role = "image"
    hooks_requests = True

    def __init__(self, node: Node, ctx: IOContext) -> None:
        super().__init__(node, ctx)
        self.rules: BlkdebugState = build_state(node.options, ctx.lock)
        self._quiet = threading.local()
        self._fires = False
        self.align = int(node.options.get("align", 0) or 0) or 1
        limit = min(int(node.options.get("max-transfer", 0) or 0) or _INT_MAX, _INT_MAX)
        self.max_transfer = limit - limit % self.align

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        try:
            check_limits(options)
        except BlkdebugError as exc:
            return str(exc)
        return None

    def resolve(self) -> None:
        self._fires = any(link.role == "file" and link.parent.spec.is_format
                          for link in self.node.parents)

    def _event(self, name: str) -> None:
        """An event its format parent fires about guest data (``read_aio``,
        ``write_aio``): none without such a parent, none for metadata."""
        if self._fires and not getattr(self._quiet, "depth", 0):
            self.rules.event(name)

    def debug_event(self, name: str) -> None:
        """An event fired at the node: by the format above it (a qcow2 parent's
        ``l2_load``, ``flush_to_os`` …) or by the block layer for a request it receives
        (``pwritev`` …)."""
        self.rules.event(name)

    def _fail(self, iotype: str, offset: int, length: int) -> None:
        err = self.rules.check(iotype, offset, length)
        if err:
            raise OSError(err, os.strerror(err))

    # -- the block layer's request shaping ---------------------------------------------
    def _aligned(self, offset: int, length: int) -> tuple[int, int]:
        """The request widened to the node's ``align`` (QEMU pads it)."""
        start = offset - offset % self.align
        end = -(-(offset + length) // self.align) * self.align
        return start, end

    def _pieces(self, start: int, end: int, *, clip: bool) -> list[tuple[int, int]]:
        """The driver requests an aligned request becomes: at most ``max-transfer`` each
        and (reads, ``clip``) none past the node's end, which reads as zeros."""
        limit = end
        if clip:
            size = self.length()
            limit = min(end, start + max(0, -(-(size - start) // self.align) * self.align))
        pieces = []
        pos = start
        while pos < limit:
            n = min(limit - pos, self.max_transfer)
            pieces.append((pos, n))
            pos += n
        return pieces

    def _check_read(self, offset: int, length: int) -> None:
        start, end = self._aligned(offset, length)
        for pos, n in self._pieces(start, end, clip=True):
            self._fail("read", pos, n)

    # -- requests ----------------------------------------------------------------------
    def read_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def write_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def zeroes_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        self._event("read_aio")
        self._check_read(offset, len(view))
        below = self.passthrough()
        assert below is not None
        return [(below[0], offset + below[1], view)]

    def _on_request(self, iotype: str, offset: int, length: int) -> None:
        if iotype == "write":
            self._event("write_aio")

    def _pad(self, offset: int, length: int) -> tuple[bool, bool]:
        """Read what an unaligned write leaves of its first and last blocks, firing the
        read-modify-write events (QEMU's padding: one read when both ends share one or
        two adjacent blocks). Whether the head's and the tail's reads failed: QEMU 7.2
        does not fail the write then (it ignores the padding read's result) and writes
        the block with a buffer the read did not fill."""
        align = self.align
        head = offset % align
        tail = (-(offset + length)) % align
        if not head and not tail:
            return False, False
        start, end = self._aligned(offset, length)
        total = head + length + tail
        merged = total == (2 * align if total > align and head and tail else align)
        head_failed = tail_failed = False
        if head or merged:
            if head:
                self.debug_event("pwritev_rmw_head")
            if merged and tail:
                self.debug_event("pwritev_rmw_tail")
            failed = not self._read_ok(start, end - start if merged else align)
            head_failed, tail_failed = bool(head) and failed, merged and failed
            if head:
                self.debug_event("pwritev_rmw_after_head")
            if merged and tail:
                self.debug_event("pwritev_rmw_after_tail")
            if merged:
                return head_failed, tail_failed
        if tail:
            self.debug_event("pwritev_rmw_tail")
            tail_failed = not self._read_ok(end - align, align)
            self.debug_event("pwritev_rmw_after_tail")
        return head_failed, tail_failed

    def _read_ok(self, offset: int, length: int) -> bool:
        try:
            self._check_read(offset, length)
        except OSError:
            return False
        return True

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        head_failed, tail_failed = self._pad(offset, len(view))
        start, end = self._aligned(offset, len(view))
        # what goes to the child: the data, widened with zeros where a padding read
        # failed (the block is written whole from a buffer that read left unfilled)
        lo = start if head_failed else offset
        hi = end if tail_failed else offset + len(view)
        if (lo, hi) != (offset, offset + len(view)):
            view = memoryview(bytes(offset - lo) + bytes(view) + bytes(hi - offset - len(view)))
        below = self.passthrough()
        assert below is not None
        child, shift = below
        self.debug_event("pwritev")
        try:
            for pos, n in self._pieces(start, end, clip=False):
                self._fail("write", pos, n)
                a, b = max(pos, lo), min(pos + n, hi)
                if b > a:
                    child.write(a + shift, view[a - lo:b - lo])
        finally:
            self.debug_event("pwritev_done")

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        below = self.passthrough()
        assert below is not None
        self.debug_event("pwritev_zero")
        try:
            self._fail("write-zeroes", offset, length)
            below[0].write_zeroes(offset + below[1], length, unmap=unmap)
        finally:
            self.debug_event("pwritev_done")

    def _flush_own(self) -> None:
        self._fail("flush", 0, 0)

    def store(self) -> ByteStore:
        return BlkdebugStore(self)

    def quiet(self) -> _Quiet:
        """Requests made inside fire no events (a format's metadata I/O)."""
        return _Quiet(self._quiet)

    def close(self) -> None:
        self.rules.resume_all()


class _Quiet:
    def __init__(self, local: threading.local) -> None:
        self._local = local

    def __enter__(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1


class BlkdebugStore(NodeStore):
    """The node as a qcow2 parent's file: vectored I/O is guest data (fires events),
    single-buffer I/O is metadata (fires none)."""

    io: BlkdebugIO

    def pread(self, length: int, offset: int) -> bytes:
        with self.io.quiet():
            return super().pread(length, offset)

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        with self.io.quiet():
            return super().pwrite(data, offset)

    def debug_event(self, name: str) -> None:
        """The qcow2 parent's events (``l2_load``, ``l1_update`` …)."""
        self.io.debug_event(name)

    def pwritev(self, buffers: Any, offset: int) -> int:
        data = b"".join(bytes(b) for b in buffers)
        if not data:
            return 0
        self.io.write(offset, data)
        return len(data)

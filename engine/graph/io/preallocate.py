"""``preallocate``: a filter that grows its file child ahead of writes, as QEMU 7.2's.

While the filter holds write and resize on its child (its parents need both, as a
writable format node does), it keeps three ends: *data end* (the child's size at
that moment, then the furthest write), *file end* (how far the child really is) and
*zero start* (where the preallocated zeros begin). A write past the file end first
zeroes ``[file end, end + prealloc-size)`` rounded up to ``prealloc-align``, so the
file grows in big steps; the node's length is the data end, so a format above it
allocates from there. A zero write wholly inside the preallocated zeros is skipped.
When the filter loses write or resize, is resized or closes, the file is cut back to
the data end: afterwards the file is what it would be without the filter.
Without write and resize the filter passes everything through.
"""

from __future__ import annotations

import contextlib
from typing import Any

from engine.graph.io.base import Node, NodeIO
from engine.graph.io.context import IOContext
from engine.graph.io.filters import FilterIO

MiB = 1 << 20
DEFAULT_ALIGN = 1 * MiB
DEFAULT_SIZE = 128 * MiB
SECTOR = 512
#: QEMU's write and resize permission bits (:mod:`engine.graph.perms` names them all;
#: it sits above the driver table, which this module is part of)
WRITE_AND_RESIZE = 2 | 8


def _align_up(value: int, align: int) -> int:
    return -(-value // align) * align


class PreallocateIO(FilterIO):
    """The ``preallocate`` filter (see the module doc)."""

    def __init__(self, node: Node, ctx: IOContext) -> None:
        super().__init__(node, ctx)
        self.data_end: int | None = None
        self.file_end: int | None = None
        self.zero_start: int | None = None
        #: the child the ends describe (kept for close: the link is gone by then)
        self._file: NodeIO | None = None

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        for key in ("prealloc-align", "prealloc-size"):
            if int(options.get(key, 0)) < 0:
                return f"Parameter '{key}' expects a non-negative number below 2^64"
        if int(options.get("prealloc-align", DEFAULT_ALIGN)) % SECTOR:
            return (f"prealloc-align parameter of preallocate filter is not aligned to "
                    f"{SECTOR}")
        return None

    @property
    def align(self) -> int:
        return max(int(self.node.options.get("prealloc-align", DEFAULT_ALIGN)), 1)

    @property
    def size(self) -> int:
        return int(self.node.options.get("prealloc-size", DEFAULT_SIZE))

    def _child(self) -> NodeIO:
        below = self.passthrough()
        assert below is not None
        self._file = below[0]
        return below[0]

    def _holds(self) -> bool:
        """Write and resize on the child: the ends are this filter's to keep."""
        link = self.node.children.get("file")
        return link is not None and link.perm & WRITE_AND_RESIZE == WRITE_AND_RESIZE

    def resolve(self) -> None:
        link = self.node.children.get("file")
        if link is None or link.child.io is not self._file or not self._holds():
            self._drop()
        if link is not None:
            self._file = link.child.io

    def _drop(self) -> None:
        """Cut the preallocation back and forget the ends (permissions lost, close)."""
        if self.data_end is not None and self.file_end is not None \
                and self.data_end < self.file_end and self._file is not None:
            with contextlib.suppress(OSError):   # QEMU, too, leaves it as it is then
                self._file.truncate(self.data_end)
        self.data_end = self.file_end = self.zero_start = None

    def _ends(self, child_length: int) -> None:
        if self.data_end is None and self._holds():
            self.data_end = self.file_end = self.zero_start = child_length

    def _length_from(self, child_length: int) -> int:
        self._ends(child_length)
        return self.data_end if self.data_end is not None else child_length

    # -- writes ------------------------------------------------------------------------------
    def write_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def zeroes_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def _handle_write(self, offset: int, length: int, merge_zero: bool) -> bool:
        """Grow the file ahead of a write past the data end; True: a zero write that the
        preallocation already covers."""
        if not self._holds():
            return False
        child = self._child()
        self._ends(child.length())
        assert self.data_end is not None and self.file_end is not None
        end = offset + length
        if end <= self.data_end:
            return False
        self.data_end = end
        if self.zero_start is None or not merge_zero:
            self.zero_start = end
        if end <= self.file_end:
            return merge_zero and offset >= self.zero_start
        start = min(offset, self.file_end) if merge_zero else self.file_end
        stop = _align_up(max(start, end) + self.size, self.align)
        merge_zero = merge_zero and start <= offset
        try:
            child.write_zeroes(start, stop - start)
        except OSError:
            self.file_end = None
            return False
        self.file_end = stop
        return merge_zero

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._handle_write(offset, len(data), False)
        self._child().write(offset, data)

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        if self._handle_write(offset, length, not unmap):
            return
        self._child().write_zeroes(offset, length, unmap=unmap)

    def _truncate_through(self, size: int) -> tuple[NodeIO, int] | None:
        child = self._child()
        if self.data_end is not None and size > self.data_end:
            if self.file_end is not None and self.file_end > self.data_end:
                child.truncate(self.data_end)
                self.file_end = self.data_end
            self.data_end = size
        try:
            child.truncate(size)
        except OSError:
            self.data_end = self.file_end = self.zero_start = None
            raise
        if self._holds():
            self.data_end = self.file_end = self.zero_start = size
        return None

    def close(self) -> None:
        self._drop()

"""Filter drivers: one child, every request passed through to it.

The job filters QEMU inserts (``copy-on-read`` for stream, ``commit_top`` and
``mirror_top`` for commit) are of this kind; so are the filters a user adds.
"""

from __future__ import annotations

import errno

from engine.formats.image import Extent
from engine.graph.io.base import NodeIO


class FilterIO(NodeIO):
    """Passes every request to the child in :attr:`role`."""

    role = "file"

    def _child(self) -> NodeIO:
        link = self.node.children.get(self.role)
        if link is None:
            raise OSError(errno.ENOMEDIUM, "No medium found")
        return link.child.io

    def length(self) -> int:
        return self._child().length()

    def cluster_size(self) -> int | None:
        return self._child().cluster_size()

    def readinto(self, offset: int, view: memoryview) -> None:
        # the child has the same length and does the bounds and faults itself
        self._child().readinto(offset, view)

    def _readinto(self, offset: int, view: memoryview) -> None:
        self._child().readinto(offset, view)

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._child().write(offset, data)

    def _write_zeroes(self, offset: int, length: int) -> None:
        self._child().write_zeroes(offset, length)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        return self._child().block_status(offset, length)

    def _flush(self) -> None:
        self._child().flush()

    def truncate(self, size: int) -> None:
        self._child().truncate(size)

    def actual_size(self) -> int:
        return self._child().actual_size()


class CopyOnReadIO(FilterIO):
    """``copy-on-read``: stream's filter above the device (copying is the job's work)."""


class BackingFilterIO(FilterIO):
    """``commit_top`` / ``mirror_top``: commit's filters, whose child is a ``backing`` link."""

    role = "backing"

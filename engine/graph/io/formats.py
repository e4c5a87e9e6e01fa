"""Format drivers: ``qcow2`` over its ``file`` child with its ``backing`` below, and
``raw`` (a window of its ``file`` child, or all of it)."""

from __future__ import annotations

import errno
from collections.abc import Callable

from engine.formats.image import Extent, Image
from engine.formats.qcow2 import Qcow2Image
from engine.graph.io.base import Node, NodeIO, Pending, Reopen
from engine.graph.io.chain_status import chain_zeroes
from engine.graph.io.context import IOContext


class Qcow2IO(NodeIO):
    """A qcow2 image read through the node's current ``file`` child; clusters it does
    not allocate come from the current ``backing`` child (zeros without one)."""

    def __init__(self, node: Node, ctx: IOContext, image: Qcow2Image) -> None:
        super().__init__(node, ctx)
        self._image = image
        self._backing: NodeIO | None = None
        self.data_path = image.path
        #: writes taken and writes flushed (QEMU's write_gen / flushed_gen)
        self._written = self._flushed = 0

    @property
    def image(self) -> Image:
        return self._image

    def resolve(self) -> None:
        file_io = self.child_io("file")
        if file_io is not None:
            store = file_io.store()
            if store is not self._image.store:
                self._image.rebind(store)
                self.data_path = self._image.path
        self._backing = self.child_io("backing")
        self._image.backing_reader = self._read_backing if self._backing is not None else None
        self._image.backing_zero = self._backing_zero if self._backing is not None else None

    def _read_backing(self, offset: int, view: memoryview) -> None:
        backing = self._backing
        if backing is None:
            view[:] = bytes(len(view))
        else:
            backing.readinto(offset, view)

    def _backing_zero(self, offset: int, length: int) -> bool:
        """Whether the backing chain reads as zeros over the range by allocation alone
        (QEMU's block status above no base)."""
        return all(zero for _, _, zero in chain_zeroes(self._backing, offset, length))

    def _own_length(self) -> int:
        return self._image.virtual_size

    def _own_cluster_size(self) -> int | None:
        return self._image.cluster_size

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        pending: list[Pending] = []
        backing = self._backing
        if backing is None:
            self._image.readinto(offset, view)
        else:
            self._image.readinto(offset, view,
                                 lambda start, v: pending.append((backing, start, v)))
        return pending

    def _keep_reader(self) -> None:
        # a header rewrite forgets the reader; the node still has its backing child
        if self._image.backing_reader is None and self._backing is not None:
            self._image.backing_reader = self._read_backing
            self._image.backing_zero = self._backing_zero

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._keep_reader()
        self._written += 1
        self._image.write(offset, data)

    def _write_begin(self, offset: int, data: bytes | bytearray | memoryview,
                     ) -> Callable[[], None] | None:
        self._keep_reader()
        inflight = self._image.write_begin(offset, data)
        return inflight.run if inflight is not None else None

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        self._keep_reader()
        self._written += 1
        self._image.write_zeroes(offset, length, unmap=unmap)

    def _discard(self, offset: int, length: int) -> None:
        self._keep_reader()
        self._image.discard(offset, length)

    def _write_compressed(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._keep_reader()
        self._written += 1
        self._image.write_compressed(offset, data)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        extents: list[Extent] = self._image.block_status(offset, length)
        return extents

    def _flush_own(self) -> None:
        """QEMU's flush of a format node: ``flush_to_os`` announced to its file, the
        cached metadata written, then ``flush_to_disk`` if it took writes since the last
        flush (a read-only node flushes nothing)."""
        file_io = self.child_io("file")
        if self.node.read_only or file_io is None:
            self._image.flush()
            return
        written = self._written
        file_io.debug_event("flush_to_os")
        self._image.flush()
        if written != self._flushed:
            file_io.debug_event("flush_to_disk")
            self._flushed = written

    def _truncate_through(self, size: int) -> tuple[NodeIO, int] | None:
        self._image.resize(size)
        return None

    def begin_write_back(self) -> None:
        self._image.begin_write_back()

    def end_write_back(self) -> None:
        self._image.end_write_back()

    def set_writable(self, writable: bool) -> Reopen | None:
        if writable == self._image.writable:
            return None
        if writable and self._image.corrupt:
            raise OSError(errno.EACCES, "qcow2: Image is corrupt; cannot be opened read/write")
        return Reopen(lambda: self._image.set_writable(writable), lambda: None)

    def close(self) -> None:
        self._image.close()


class RawIO(NodeIO):
    """``raw``: guest byte *n* is byte ``offset`` + *n* of the ``file`` child, up to
    ``size`` (or the child's end), as QEMU's raw format driver maps it."""

    @property
    def offset(self) -> int:
        return int(self.node.options.get("offset", 0))

    def resolve(self) -> None:
        file_io = self.child_io("file")
        self.data_path = file_io.host_name() if file_io is not None else None

    def passthrough(self) -> tuple[NodeIO, int] | None:
        file_io = self.child_io("file")
        if file_io is None:
            raise OSError(errno.ENOMEDIUM, "No medium found")
        return file_io, self.offset

    def _length_from(self, child_length: int) -> int:
        offset = self.offset
        if child_length < offset:
            return 0
        if "size" in self.node.options:
            return min(int(self.node.options["size"]), child_length - offset)
        return child_length - offset

    @property
    def image(self) -> Image | None:
        return None

    def _truncate_through(self, size: int) -> tuple[NodeIO, int] | None:
        if "size" in self.node.options:
            raise OSError(errno.ENOTSUP, "Cannot resize fixed-size raw disks")
        below = self.passthrough()
        assert below is not None
        return below[0], size + self.offset

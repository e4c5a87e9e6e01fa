"""Format drivers: ``qcow2`` over its ``file`` child with its ``backing`` below, and
``raw`` (a window of its ``file`` child, or all of it)."""

from __future__ import annotations

import errno

from engine.formats.image import DATA, UNALLOCATED, Extent, Image
from engine.formats.qcow2 import Qcow2Image
from engine.graph.io.base import IOContext, Node, NodeIO, Reopen


class Qcow2IO(NodeIO):
    """A qcow2 image read through the node's current ``file`` child; clusters it does
    not allocate come from the current ``backing`` child (zeros without one)."""

    def __init__(self, node: Node, ctx: IOContext, image: Qcow2Image) -> None:
        super().__init__(node, ctx)
        self._image = image
        self._backing: NodeIO | None = None
        self.data_path = image.path

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

    def _read_backing(self, offset: int, view: memoryview) -> None:
        backing = self._backing
        if backing is None:
            view[:] = bytes(len(view))
        else:
            backing.readinto(offset, view)

    def length(self) -> int:
        return self._image.virtual_size

    def cluster_size(self) -> int | None:
        return self._image.cluster_size

    def _readinto(self, offset: int, view: memoryview) -> None:
        self._image.readinto(offset, view, self._image.backing_reader)

    def _keep_reader(self) -> None:
        # a header rewrite forgets the reader; the node still has its backing child
        if self._image.backing_reader is None and self._backing is not None:
            self._image.backing_reader = self._read_backing

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._keep_reader()
        self._image.write(offset, data)

    def _write_zeroes(self, offset: int, length: int) -> None:
        self._keep_reader()
        self._image.write_zeroes(offset, length)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        return self._image.block_status(offset, length)

    def _flush(self) -> None:
        self._image.flush()

    def truncate(self, size: int) -> None:
        self.refresh()
        self._image.resize(size)

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

    def __init__(self, node: Node, ctx: IOContext) -> None:
        super().__init__(node, ctx)
        self._file: NodeIO | None = None

    @property
    def offset(self) -> int:
        return int(self.node.options.get("offset", 0))

    def resolve(self) -> None:
        self._file = self.child_io("file")
        self.data_path = self._file.host_name() if self._file is not None else None

    def _child(self) -> NodeIO:
        self.refresh()
        if self._file is None:
            raise OSError(errno.ENOMEDIUM, "No medium found")
        return self._file

    def length(self) -> int:
        file_len = self._child().length()
        offset = self.offset
        if file_len < offset:
            return 0
        if "size" in self.node.options:
            return min(int(self.node.options["size"]), file_len - offset)
        return file_len - offset

    def cluster_size(self) -> int | None:
        return self._child().cluster_size()

    @property
    def image(self) -> Image | None:
        return None

    def _readinto(self, offset: int, view: memoryview) -> None:
        self._child().readinto(offset + self.offset, view)

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._child().write(offset + self.offset, data)

    def _write_zeroes(self, offset: int, length: int) -> None:
        self._child().write_zeroes(offset + self.offset, length)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        shift = self.offset
        out = []
        for ext in self._child().block_status(offset + shift, length):
            # what the child leaves to its backing is still data of this raw image
            state = DATA if ext.state == UNALLOCATED else ext.state
            out.append(Extent(ext.start - shift, ext.length, state))
        return out

    def truncate(self, size: int) -> None:
        if "size" in self.node.options:
            raise OSError(errno.ENOTSUP, "Cannot resize fixed-size raw disks")
        self._child().truncate(size + self.offset)

"""Protocol drivers: the bottom of every data path (``file``, ``null-co``, ``null-aio``)."""

from __future__ import annotations

from engine.formats.hostfile import HostFile
from engine.formats.image import DATA, ZERO, Extent, zero_fill
from engine.formats.store import ByteStore
from engine.graph.io.base import Node, NodeIO, Pending, Reopen
from engine.graph.io.context import IOContext

SECTOR = 512
#: the largest zero buffer written at once
ZERO_CHUNK = 16 << 20


class FileIO(NodeIO):
    """A host file, opened once when the node was added (see :mod:`engine.formats.hostfile`).

    Its length is the file's size in whole sectors, as QEMU reports it; what lies past
    the end of the file inside the last sector reads as zeros.
    """

    def __init__(self, node: Node, ctx: IOContext, file: HostFile) -> None:
        super().__init__(node, ctx)
        self.file = file
        # a format above writes the file directly (its store): the node still sees it
        file.on_write = node.note_write

    def host_name(self) -> str | None:
        return self.file.name

    def _own_length(self) -> int:
        return -(-self.file.size() // SECTOR) * SECTOR

    def store(self) -> ByteStore:
        return self.file

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        done = 0
        while done < len(view):
            n = self.file.preadv([view[done:]], offset + done)
            if n == 0:
                zero_fill(view[done:])
                break
            done += n
        return []

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += self.file.pwrite(view[done:], offset + done)

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        """Zeros: written inside the file, past its end the file just grows (what
        reads as zeros there already)."""
        size = self.file.size()
        end = offset + length
        pos = offset
        while pos < min(end, size):
            n = min(ZERO_CHUNK, min(end, size) - pos)
            self._write(pos, bytes(n))
            pos += n
        if end > size:
            self.file.truncate(end)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        size = self.file.size()
        end = offset + length
        inside = min(end, max(size, offset))
        out = [Extent(s, n, DATA if data else ZERO, s)
               for s, n, data in self.file.data_runs(offset, inside)] if inside > offset else []
        if inside < end:
            out.append(Extent(inside, end - inside, ZERO, inside))
        return out

    def _flush_own(self) -> None:
        if self.file.writable:
            self.file.sync()

    def _truncate_through(self, size: int) -> tuple[NodeIO, int] | None:
        self.file.truncate(size)
        return None

    def set_writable(self, writable: bool) -> Reopen | None:
        if writable == self.file.writable:
            return None
        new = self.file.reopen(writable)
        return Reopen(lambda: self.file.adopt(new), new.close)

    def _own_actual_size(self) -> int | None:
        try:
            return self.file.allocated()
        except OSError:
            return 0

    def close(self) -> None:
        self.file.close()


class NullIO(NodeIO):
    """``null-co`` / ``null-aio``: reads zeros, writes go nowhere."""

    DEFAULT_SIZE = 1 << 30

    def _own_length(self) -> int:
        # the block layer counts whole 512-byte sectors: a size of 1000 is 1024
        return -(-int(self.node.options.get("size", self.DEFAULT_SIZE)) // 512) * 512

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        zero_fill(view)
        return []

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Discarded, as QEMU's null driver does."""

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        state = ZERO if self.node.options.get("read-zeroes") else DATA
        return [Extent(offset, length, state)]

    def _own_actual_size(self) -> int | None:
        return 0

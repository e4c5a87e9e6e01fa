"""What a format reads its bytes from: a *byte store*.

A qcow2 or raw image is interpreted over a byte store, not over a path: a host file
(:class:`engine.formats.hostfile.HostFile`, with a descriptor for the fast paths) or
any other node of a block graph that presents bytes (a raw window, a filter over a
file). Only the methods here are used, so the format code does not know which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ByteStore(Protocol):
    """Positioned I/O on a sequence of bytes; every method raises OSError on failure."""

    #: how the store is named in messages (a file name as given, a node's filename)
    name: str
    #: a host descriptor when the bytes are a plain host file, else None
    fd: int | None

    @property
    def writable(self) -> bool:
        """Whether the store takes writes."""
        ...

    def size(self) -> int: ...

    def allocated(self) -> int: ...

    def pread(self, length: int, offset: int) -> bytes: ...

    def preadv(self, buffers: Sequence[memoryview], offset: int) -> int: ...

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> int: ...

    def pwritev(self, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int: ...

    def sync(self) -> None: ...

    def truncate(self, length: int) -> None: ...

    def start_writeback(self, offset: int, length: int) -> None: ...

    def data_runs(self, offset: int, end: int) -> list[tuple[int, int, bool]]: ...

    def direct_fd(self) -> int: ...

    def close(self) -> None: ...


class WindowStore:
    """``size`` bytes of another store from ``offset`` on (a raw window, as QEMU's raw
    driver maps ``offset``/``size``): what a ``json:`` backing name can describe."""

    fd: int | None = None

    def __init__(self, store: ByteStore, offset: int, size: int | None, name: str) -> None:
        self.store = store
        self.offset = offset
        self.window = size
        self.name = name
        self.writable = store.writable

    def size(self) -> int:
        room = max(0, self.store.size() - self.offset)
        return room if self.window is None else min(self.window, room)

    def allocated(self) -> int:
        return self.store.allocated()

    def pread(self, length: int, offset: int) -> bytes:
        length = max(0, min(length, self.size() - offset))
        return self.store.pread(length, self.offset + offset)

    def preadv(self, buffers: Sequence[memoryview], offset: int) -> int:
        room = max(0, self.size() - offset)
        cut: list[memoryview] = []
        for buf in buffers:
            if room <= 0:
                break
            cut.append(buf[:room])
            room -= len(cut[-1])
        return self.store.preadv(cut, self.offset + offset) if cut else 0

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        return self.store.pwrite(data, self.offset + offset)

    def pwritev(self, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
        return self.store.pwritev(buffers, self.offset + offset)

    def sync(self) -> None:
        self.store.sync()

    def truncate(self, length: int) -> None:
        self.store.truncate(self.offset + length)

    def start_writeback(self, offset: int, length: int) -> None:
        self.store.start_writeback(self.offset + offset, length)

    def data_runs(self, offset: int, end: int) -> list[tuple[int, int, bool]]:
        return [(s - self.offset, n, data) for s, n, data in
                self.store.data_runs(self.offset + offset, self.offset + end)]

    def direct_fd(self) -> int:
        raise OSError(95, "not a whole host file")

    def close(self) -> None:
        self.store.close()

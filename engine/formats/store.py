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
    writable: bool

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

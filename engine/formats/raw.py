"""raw images: file byte *n* is guest byte *n*; holes read as zeros."""

from __future__ import annotations

import errno
from typing import Any

from engine.formats.errors import ImageIOError
from engine.formats.image import (
    DATA,
    ZERO,
    BackingReader,
    Extent,
    Image,
    file_error,
    locked,
    zero_fill,
)
from engine.formats.store import ByteStore

_ZERO_CHUNK = 1 << 20


class RawImage(Image):
    """A raw file. The virtual size is the file size."""

    format = "raw"

    def __init__(self, store: ByteStore, writable: bool, *, owns_store: bool = True) -> None:
        super().__init__(store, writable, owns_store=owns_store)
        self.virtual_size = self.file_size()

    @locked
    def readinto(self, offset: int, view: memoryview, backing: BackingReader | None = None,
                 *, prezeroed: bool = False) -> None:
        self.check_request(offset, len(view))
        done = 0
        while done < len(view):
            try:
                n = self.store.preadv([view[done:]], offset + done)
            except OSError as exc:
                raise file_error(exc, self.path, "Could not read", offset + done) from exc
            if n == 0:  # the file shrank under us: what is gone reads as zeros
                if not prezeroed:
                    zero_fill(view[done:])
                return
            done += n

    @locked
    def block_status(self, offset: int, length: int) -> list[Extent]:
        """Data vs holes (SEEK_DATA/SEEK_HOLE); the whole range is defined by this layer."""
        self.check_request(offset, length)
        try:
            runs = self.store.data_runs(offset, offset + length)
        except OSError:
            runs = [(offset, length, True)]
        return [Extent(start, n, DATA if is_data else ZERO, start) for start, n, is_data in runs]

    @locked
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.check_writable()
        self.check_request(offset, len(data))
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            try:
                done += self.store.pwrite(view[done:], offset + done)
            except OSError as exc:
                raise file_error(exc, self.path, "Could not write", offset + done) from exc

    @locked
    def write_zeroes(self, offset: int, length: int) -> None:
        self.check_writable()
        self.check_request(offset, length)
        chunk = bytes(min(length, _ZERO_CHUNK))
        pos, end = offset, offset + length
        while pos < end:
            n = min(len(chunk), end - pos)
            self.write(pos, memoryview(chunk)[:n])
            pos += n

    def resize(self, size: int) -> None:
        self.check_writable()
        try:
            self.store.truncate(size)
        except OSError as exc:
            raise file_error(exc, self.path, "Could not resize") from exc
        self.virtual_size = size

    def set_backing(self, backing_file: str | None, backing_format: str | None) -> None:
        if backing_file is not None:
            raise ImageIOError("raw images cannot have a backing file", self.path,
                               errno=errno.ENOTSUP)

    def info(self) -> dict[str, Any]:
        return {
            "virtual-size": self.virtual_size,
            "filename": self.path,
            "format": "raw",
            "actual-size": self.actual_size(),
            "dirty-flag": False,
        }

"""raw images: file byte *n* is guest byte *n*; holes read as zeros."""

from __future__ import annotations

import errno
import os
from typing import Any

from engine.formats import fileio
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

_ZERO_CHUNK = 1 << 20


class RawImage(Image):
    """A raw file. The virtual size is the file size."""

    format = "raw"

    def __init__(self, path: str, fd: int, writable: bool) -> None:
        super().__init__(path, fd, writable)
        self.virtual_size = self.file_size()

    @locked
    def readinto(self, offset: int, view: memoryview, backing: BackingReader | None = None,
                 *, prezeroed: bool = False) -> None:
        self.check_request(offset, len(view))
        done = 0
        while done < len(view):
            try:
                n = fileio.preadv(self.fd, [view[done:]], offset + done)
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
        end = offset + length
        out: list[Extent] = []
        pos = offset
        while pos < end:
            try:
                data = os.lseek(self.fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data after pos
                    out.append(Extent(pos, end - pos, DATA, pos))
                    break
                data = end
            data = min(data, end)
            if data > pos:
                out.append(Extent(pos, data - pos, ZERO, pos))
            if data >= end:
                break
            try:
                hole = min(os.lseek(self.fd, data, os.SEEK_HOLE), end)
            except OSError:
                hole = end
            out.append(Extent(data, hole - data, DATA, data))
            pos = hole
        return out

    @locked
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.check_writable()
        self.check_request(offset, len(data))
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            try:
                done += fileio.pwrite(self.fd, view[done:], offset + done)
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

"""Opening an image file: probing its format and picking the driver."""

from __future__ import annotations

import errno
import os
import stat

from engine.formats import fileio
from engine.formats.errors import (
    CorruptImageError,
    ImageError,
    ImageIOError,
    UnsupportedImageError,
)
from engine.formats.image import Image, file_error
from engine.formats.qcow2_header import MAGIC

FORMATS = ("qcow2", "raw")


def open_image(path: str | os.PathLike[str], fmt: str | None = None,
               writable: bool = False) -> Image:
    """Open one image file (its backing file is not opened).

    ``fmt`` None probes: the qcow2 magic means qcow2, anything else is raw (QEMU
    recognises raw only by elimination, too). Raises an :class:`ImageError`.
    """
    path = os.fspath(path)
    if fmt is not None and fmt not in FORMATS:
        raise UnsupportedImageError(f"Unknown driver '{fmt}'", path, feature=f"format {fmt}")
    if "\0" in path:   # a header's backing name can hold one; the OS cannot take it
        raise ImageIOError(f"Could not open '{path}': the file name contains a NUL byte",
                           path, errno=errno.EINVAL)
    try:
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
    except OSError as exc:
        raise file_error(exc, path, f"Could not open '{path}'") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"Could not open '{path}': Is a directory", path)
        if fmt is None:
            fmt = "qcow2" if fileio.pread(fd, 4, 0) == MAGIC else "raw"
        if fmt == "qcow2":
            from engine.formats.qcow2 import Qcow2Image

            if fileio.pread(fd, 4, 0) != MAGIC:
                raise CorruptImageError("Image is not in qcow2 format", path, 0)
            return Qcow2Image(path, fd, writable)
        from engine.formats.raw import RawImage

        return RawImage(path, fd, writable)
    except OSError as exc:
        os.close(fd)
        raise file_error(exc, path, f"Could not open '{path}'") from exc
    except BaseException:
        os.close(fd)
        raise

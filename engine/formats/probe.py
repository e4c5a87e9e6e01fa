"""Opening an image: probing its format and picking the driver.

:func:`open_image_on` interprets a byte store (a host file, or any node that presents
bytes); :func:`open_image` opens a host file by name first (for the tools; the engine
opens its files through its graph's host-file layer).
"""

from __future__ import annotations

import errno
import os

from engine.formats.errors import (
    CorruptImageError,
    ImageError,
    ImageIOError,
    UnsupportedImageError,
)
from engine.formats.hostfile import open_host_file
from engine.formats.image import Image, file_error
from engine.formats.qcow2 import Qcow2Image
from engine.formats.qcow2_header import MAGIC
from engine.formats.raw import RawImage
from engine.formats.store import ByteStore

FORMATS = ("qcow2", "raw")


def probe_format(store: ByteStore) -> str:
    """qcow2 when the store starts with its magic, else raw (QEMU's probe by elimination)."""
    return "qcow2" if store.pread(4, 0) == MAGIC else "raw"


def open_image_on(store: ByteStore, fmt: str | None = None, writable: bool = False, *,
                  owns_store: bool = False) -> Image:
    """Interpret ``store`` as an image (``fmt`` None probes). Raises an :class:`ImageError`."""
    name = store.name
    if fmt is not None and fmt not in FORMATS:
        raise UnsupportedImageError(f"Unknown driver '{fmt}'", name, feature=f"format {fmt}")
    try:
        if fmt is None:
            fmt = probe_format(store)
        if fmt == "qcow2":
            if store.pread(4, 0) != MAGIC:
                raise CorruptImageError("Image is not in qcow2 format", name, 0)
            return Qcow2Image(store, writable, owns_store=owns_store)
        return RawImage(store, writable, owns_store=owns_store)
    except OSError as exc:
        raise file_error(exc, name, f"Could not open '{name}'") from exc


def open_image(path: str | os.PathLike[str], fmt: str | None = None,
               writable: bool = False) -> Image:
    """Open one image file by name (its backing file is not opened).

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
        store = open_host_file(path, writable=writable)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise ImageError(f"Could not open '{path}': Is a directory", path) from exc
        raise file_error(exc, path, f"Could not open '{path}'") from exc
    try:
        return open_image_on(store, fmt, writable, owns_store=True)
    except BaseException:
        store.close()
        raise

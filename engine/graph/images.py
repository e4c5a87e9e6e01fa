"""Opening image files for graph nodes, with QEMU's error texts.

The graph holds images from :mod:`engine.formats`; this module is the one place
that calls it, so the graph sees one error type (:class:`~engine.graph.model.GraphError`
carrying the text QEMU would print).
"""

from __future__ import annotations

import os
from typing import Any

from engine.graph.model import GraphError


def open_format_image(path: str, fmt: str, writable: bool) -> Any:
    """``engine.formats.open_image`` for a qcow2/raw node; errors become GraphError."""
    from engine.formats import open_image
    from engine.formats.errors import ImageError

    try:
        return open_image(path, fmt, writable=writable)
    except ImageError as exc:
        raise GraphError(getattr(exc, "message", str(exc))) from exc
    except OSError as exc:
        raise GraphError(f"Could not open '{path}': {os.strerror(exc.errno or 0)}") from exc


def check_host_file(filename: str, path: str, writable: bool) -> str:
    """What QEMU's ``file`` driver checks at open: the file exists and can be opened.

    Returns the file's real path (symlinks resolved), read from the open descriptor:
    one system call instead of ``realpath``'s one per path component.
    """
    try:
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
    except OSError as exc:
        raise GraphError(f"Could not open '{filename}': {os.strerror(exc.errno or 0)}") from exc
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        real = ""
    finally:
        os.close(fd)
    if not real.startswith("/") or real.endswith(" (deleted)"):
        real = os.path.realpath(path)
    return real


def file_sizes(path: str) -> tuple[int, int]:
    """(length, allocated bytes) of a host file."""
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512

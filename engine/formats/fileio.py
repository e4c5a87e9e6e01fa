"""The one seam between image code and the host file: positioned reads, writes, syncs.

Every byte :mod:`engine.formats` reads from or writes to an image file goes through
the functions here instead of calling :mod:`os` directly. They do exactly what the
``os`` functions of the same name do, with one addition: an optional *fault hook*
that is consulted before each call and may raise :class:`OSError` in its place.

That is how the robustness tests make a disk run full (``ENOSPC``) or fail
(``EIO``) in the middle of a qcow2 allocation, a header rewrite or an image
creation, without a special file system. The hook has the signature of
:meth:`engine.jobs.faults.FaultInjector.check` — ``hook(path, op, offset, length)``
with ``op`` one of ``"read"``, ``"write"``, ``"flush"``, ``"truncate"`` — so one
set of fault rules serves both the jobs' image-level wrapper and this file level::

    injector = FaultInjector()
    injector.add(path, "write", errno=errno.ENOSPC, offset=0x50000)
    with fileio.faults(injector.check):
        image.write(...)          # raises ImageIOError(errno=ENOSPC)

Offsets that ``off_t`` cannot hold (a corrupt table entry can name one) fail with
``EINVAL`` as an :class:`OSError`, like any other refused call, instead of Python's
``OverflowError``. Without a hook the cost is a range check and one global lookup.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable, Iterator, Sequence

#: ``hook(path, op, offset, length)``; raises OSError to fail the call
FaultHook = Callable[[str, str, int, int], None]

_hook: FaultHook | None = None


def install(hook: FaultHook | None) -> FaultHook | None:
    """Set the fault hook (None removes it); returns the previous one."""
    global _hook
    previous, _hook = _hook, hook
    return previous


@contextlib.contextmanager
def faults(hook: FaultHook) -> Iterator[None]:
    """Consult ``hook`` before every image file call inside the ``with`` block."""
    previous = install(hook)
    try:
        yield
    finally:
        install(previous)


def fd_path(fd: int) -> str:
    """The file an open descriptor refers to (Linux ``/proc``), for matching fault rules."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"<fd {fd}>"


#: the largest file offset the OS takes (off_t is signed 64-bit)
MAX_OFFSET = (1 << 63) - 1


def _range(offset: int, length: int) -> None:
    """Offsets from corrupt tables can exceed off_t: fail like the OS would (EINVAL)."""
    if offset < 0 or offset + length > MAX_OFFSET:
        raise OSError(errno.EINVAL, f"file offset {offset:#x} is out of range")


def _check(fd: int, op: str, offset: int, length: int) -> None:
    hook = _hook
    if hook is not None:
        hook(fd_path(fd), op, offset, length)


def pread(fd: int, length: int, offset: int) -> bytes:
    _range(offset, length)
    if _hook is not None:
        _check(fd, "read", offset, length)
    return os.pread(fd, length, offset)


def preadv(fd: int, buffers: Sequence[memoryview], offset: int) -> int:
    _range(offset, 0)
    if _hook is not None:
        _check(fd, "read", offset, sum(len(b) for b in buffers))
    return os.preadv(fd, buffers, offset)


def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    _range(offset, len(data))
    if _hook is not None:
        _check(fd, "write", offset, len(data))
    return os.pwrite(fd, data, offset)


def pwritev(fd: int, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
    _range(offset, 0)
    if _hook is not None:
        _check(fd, "write", offset, sum(len(b) for b in buffers))
    return os.pwritev(fd, buffers, offset)


def fdatasync(fd: int) -> None:
    if _hook is not None:
        _check(fd, "flush", 0, 0)
    os.fdatasync(fd)


def ftruncate(fd: int, length: int) -> None:
    _range(length, 0)
    if _hook is not None:
        _check(fd, "truncate", length, 0)
    os.ftruncate(fd, length)


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _libc_sync_file_range()
#: SYNC_FILE_RANGE_WRITE from <fcntl.h>: start writeback of dirty pages, do not wait
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``[offset, offset+length)`` to disk, without waiting.

    A hint, never an error: data written in large batches and made durable by one
    ``fdatasync`` at the end would otherwise sit in the page cache until that call,
    which then waits for all of it; started early, the disk works while the next
    batch is copied. Linux's ``sync_file_range``; a no-op where it is missing.
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

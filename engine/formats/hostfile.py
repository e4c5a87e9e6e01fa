"""Host files: the one place that opens, creates and reopens files on the host.

Everything the engine reads or writes on the host goes through a :class:`HostFile`,
a descriptor opened once. A file is never opened again by its name: a second
descriptor (read-write after read-only, or ``O_DIRECT`` for bulk data) is opened
through ``/proc/self/fd/N`` of the first, so it is the same file even if the name
was renamed, replaced or pointed elsewhere in the meantime.

:class:`HostFS` turns a name into a descriptor. Without a root it follows QEMU's
``file`` driver: the name as given, relative to the working directory, symlinks
followed; with a root, the name must resolve inside it. Confining names by
descriptor (``openat2`` with ``RESOLVE_BENEATH``) belongs in :meth:`HostFS._open`
and nowhere else.

Errors are :class:`OSError` with the name as given; callers word them as QEMU does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from engine.formats import fileio

_PROC_FD = "/proc/self/fd/"


class HostFile:
    """An open host file: positioned I/O on one descriptor (a byte store).

    ``name`` is the name it was opened by (for messages); ``fd`` the descriptor, which
    format code may use directly for the fast paths (``O_DIRECT``, writeback hints).
    """

    def __init__(self, fd: int, name: str, writable: bool) -> None:
        self.fd: int | None = fd
        self.name = name
        self.writable = writable

    # -- identity ------------------------------------------------------------------------
    def identity(self) -> tuple[int, int]:
        """(st_dev, st_ino): two descriptors on one file have the same identity."""
        st = os.fstat(self._fd())
        return st.st_dev, st.st_ino

    def real_path(self) -> str:
        """The file's path now, read from the descriptor (symlinks resolved)."""
        try:
            real = os.readlink(_PROC_FD + str(self._fd()))
        except OSError:
            real = ""
        if not real.startswith("/") or real.endswith(" (deleted)"):
            return os.path.realpath(self.name)
        return real

    def _fd(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "the file is closed", self.name)
        return self.fd

    # -- the byte store ------------------------------------------------------------------
    def size(self) -> int:
        return os.fstat(self._fd()).st_size

    def allocated(self) -> int:
        """Bytes the host allocated for the file (``st_blocks``)."""
        return os.fstat(self._fd()).st_blocks * 512

    def pread(self, length: int, offset: int) -> bytes:
        return fileio.pread(self._fd(), length, offset)

    def preadv(self, buffers: Sequence[memoryview], offset: int) -> int:
        return fileio.preadv(self._fd(), buffers, offset)

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        return fileio.pwrite(self._fd(), data, offset)

    def pwritev(self, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
        return fileio.pwritev(self._fd(), buffers, offset)

    def sync(self) -> None:
        fileio.fdatasync(self._fd())

    def truncate(self, length: int) -> None:
        fileio.ftruncate(self._fd(), length)

    def start_writeback(self, offset: int, length: int) -> None:
        fileio.start_writeback(self._fd(), offset, length)

    def data_runs(self, offset: int, end: int) -> list[tuple[int, int, bool]]:
        """``[(start, length, is_data)]`` over ``[offset, end)``: holes and data
        (SEEK_DATA/SEEK_HOLE); unknown is data."""
        fd = self._fd()
        out: list[tuple[int, int, bool]] = []
        pos = offset
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:     # ENXIO: no data after pos
                    out.append((pos, end - pos, True))
                    break
                data = end
            data = min(data, end)
            if data > pos:
                out.append((pos, data - pos, False))
            if data >= end:
                break
            try:
                hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            except OSError:
                hole = end
            out.append((data, hole - data, True))
            pos = hole
        return out

    # -- descriptors -----------------------------------------------------------------------
    def reopen(self, writable: bool) -> HostFile:
        """A new descriptor on the same file, read-write or read-only (this one stays)."""
        fd = os.open(_PROC_FD + str(self._fd()),
                     (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        return HostFile(fd, self.name, writable)

    def adopt(self, other: HostFile) -> None:
        """Take over ``other``'s descriptor (a reopen committed); the old one is closed."""
        old, self.fd, other.fd = self.fd, other.fd, None
        self.writable = other.writable
        if old is not None:
            os.close(old)

    def direct_fd(self) -> int:
        """A second descriptor on the same file with ``O_DIRECT`` (the caller closes it)."""
        flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC | os.O_DIRECT
        return os.open(_PROC_FD + str(self._fd()), flags)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> HostFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HostFile {self.name!r} fd={self.fd}{' rw' if self.writable else ''}>"


class HostFS:
    """Names to host files, optionally confined to ``root``.

    Every method raises :class:`OSError` (``strerror`` as the OS words it, ``filename``
    the name as given) when the name cannot be opened.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = str(Path(root).resolve()) if root is not None else None

    def path(self, name: str) -> str:
        """The absolute host path ``name`` means (QEMU: relative to the working directory)."""
        if "\0" in name:
            # QEMU's C strings end at the NUL; no such file is looked up here
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        path = os.path.abspath(name)
        if self.root is not None:
            real = os.path.realpath(path)
            if real != self.root and not real.startswith(self.root + os.sep):
                raise OSError(errno.EACCES, os.strerror(errno.EACCES), name)
        return path

    def open(self, name: str, *, writable: bool) -> HostFile:
        """Open an existing file (a directory is refused with EISDIR)."""
        fd = self._open(name, os.O_RDWR if writable else os.O_RDONLY)
        return HostFile(fd, name, writable)

    def create(self, name: str, mode: int = 0o644) -> HostFile:
        """Open ``name`` read-write, creating it if it is missing; nothing is truncated
        (QEMU checks image locks on the descriptor before it truncates)."""
        fd = self._open(name, os.O_RDWR | os.O_CREAT, mode)
        return HostFile(fd, name, True)

    def _open(self, name: str, flags: int, mode: int = 0o644) -> int:
        path = self.path(name)
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, name) from None
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        except BaseException:
            os.close(fd)
            raise
        return fd


#: Host files without confinement: the command-line tools and the offline view.
UNCONFINED = HostFS()


def open_host_file(name: str | os.PathLike[str], writable: bool = False) -> HostFile:
    """Open ``name`` without confinement (tools that take paths from their own user)."""
    return UNCONFINED.open(os.fspath(name), writable=writable)


def create_host_file(name: str | os.PathLike[str]) -> HostFile:
    return UNCONFINED.create(os.fspath(name))


def close_quietly(f: HostFile | None) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            f.close()

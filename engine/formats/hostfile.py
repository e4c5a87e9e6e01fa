"""Host files: the one place that opens, creates and reopens files on the host.

Everything the engine reads or writes on the host goes through a :class:`HostFile`,
a descriptor opened once. A file is never opened again by its name: a second
descriptor (read-write after read-only, or ``O_DIRECT`` for bulk data) is opened
through ``/proc/self/fd/N`` of the first, so it is the same file even if the name
was renamed, replaced or pointed elsewhere in the meantime.

:class:`HostFS` turns a name into a descriptor. Without a root it follows QEMU's
``file`` driver: the name as given, relative to the working directory, symlinks
followed; with a root, the name is resolved beneath a descriptor of the root
(``openat2`` with ``RESOLVE_BENEATH``, see :mod:`engine.formats.beneath`) in
:meth:`HostFS._open` and nowhere else.

Errors are :class:`OSError` with the name as given; callers word them as QEMU does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.formats import fileio
from engine.formats.beneath import open_beneath

_PROC_FD = "/proc/self/fd/"


class HostFile:
    """An open host file: positioned I/O on one descriptor (a byte store).

    ``name`` is the name it was opened by (for messages); ``fd`` the descriptor, which
    format code may use directly for the fast paths (``O_DIRECT``, writeback hints).
    """

    def __init__(self, fd: int, name: str, writable: bool, *, created: bool = False) -> None:
        self.fd: int | None = fd
        self.name = name
        self.writable = writable
        #: :meth:`HostFS.create` made the file (it did not exist before)
        self.created = created
        #: something may have been written since the last successful :meth:`sync`
        #: (as QEMU's write and flush generations: a flush with nothing new to make
        #: durable does not reach the disk)
        self.unsynced = created
        #: told ``(offset, length)`` of every write made through :meth:`pwrite` and
        #: :meth:`pwritev` (the node that owns the file keeps its highest write)
        self.on_write: Callable[[int, int], None] | None = None

    # -- identity ------------------------------------------------------------------------
    def identity(self) -> tuple[int, int]:
        """(st_dev, st_ino): two descriptors on one file have the same identity."""
        st = os.fstat(self._fd())
        return st.st_dev, st.st_ino

    def real_path(self) -> str:
        """The file's path now, read from the descriptor (symlinks resolved); a file
        removed since it was opened keeps the kernel's `` (deleted)`` suffix (its name
        may now be another file's, even outside a root)."""
        try:
            real = os.readlink(_PROC_FD + str(self._fd()))
        except OSError:
            real = ""
        if not real.startswith("/"):
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
        self.unsynced = True
        if self.on_write is not None:
            self.on_write(offset, memoryview(data).nbytes)
        return fileio.pwrite(self._fd(), data, offset)

    def pwritev(self, buffers: Sequence[bytes | bytearray | memoryview], offset: int) -> int:
        self.unsynced = True
        if self.on_write is not None:
            self.on_write(offset, sum(memoryview(b).nbytes for b in buffers))
        return fileio.pwritev(self._fd(), buffers, offset)

    def sync(self) -> None:
        """``fdatasync``, unless nothing was written through this file since the last
        one succeeded (closing an image only read costs no disk flush, as in QEMU).
        Writes that race with the sync mark the file again; a failed sync leaves it
        marked, so the next flush tries again and reports again."""
        if not self.unsynced:
            return
        self.unsynced = False
        try:
            fileio.fdatasync(self._fd())
        except BaseException:
            self.unsynced = True
            raise

    def truncate(self, length: int) -> None:
        self.unsynced = True
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
        self.unsynced = self.unsynced or other.unsynced
        if old is not None:
            os.close(old)

    def direct_fd(self) -> int:
        """A second descriptor on the same file with ``O_DIRECT`` (the caller closes it,
        and sets :attr:`unsynced` before each write through it)."""
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


class NotRegularFile(OSError):
    """The name opened is a FIFO, a socket or a device, which QEMU's ``file`` driver
    refuses (``'file' driver requires '...' to be a regular file``)."""


class HostFS:
    """Names to host files, optionally confined to ``root``.

    Without a root a name means what QEMU's ``file`` driver makes of it: the name as
    given to ``open()``, relative to the working directory, symlinks followed. With a
    root, the name must start inside it (as an absolute name or relative to a working
    directory inside it) and the rest is resolved by the kernel beneath a descriptor
    of the root opened once (:func:`engine.formats.beneath.open_beneath`): a symlink
    that leaves the root, ``..`` above it or a magic link is refused, however the
    names change meanwhile. The descriptor opened is then checked (a regular file,
    inside the root) and is the only way the engine ever reaches that file again.

    Every method raises :class:`OSError` (``strerror`` as the OS words it, ``filename``
    the name as given) when the name cannot be opened.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = str(Path(root).resolve()) if root is not None else None
        #: the root as spelled by whoever set it (clients may name files that way)
        self._given_root = os.path.abspath(root) if root is not None else None
        self._root_fd: int | None = None
        if self.root is not None:
            self._root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def path(self, name: str) -> str:
        """The absolute host path ``name`` means (QEMU: relative to the working directory);
        only a name: files are opened by :meth:`open` and :meth:`create`."""
        _check_name(name)
        return os.path.abspath(name)

    def beneath(self, name: str) -> str:
        """``name`` relative to the root, as spelled (EACCES when it starts elsewhere)."""
        assert self.root is not None and self._given_root is not None
        full = name if name.startswith("/") else os.path.join(os.getcwd(), name)
        for prefix in (self.root, self._given_root):
            if full == prefix:
                return "."
            inside = prefix.rstrip("/") + "/"          # the root may be "/" itself
            if full.startswith(inside):
                return full[len(inside):].lstrip("/") or "."
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), name)

    def open(self, name: str, *, writable: bool) -> HostFile:
        """Open an existing regular file (a directory: EISDIR; anything else that is
        not a regular file: :class:`NotRegularFile`)."""
        fd = self._open(name, os.O_RDWR if writable else os.O_RDONLY)
        return HostFile(fd, name, writable)

    def create(self, name: str, mode: int = 0o644) -> HostFile:
        """Open ``name`` read-write, creating it if it is missing; nothing is truncated
        (QEMU checks image locks on the descriptor before it truncates)."""
        try:
            fd = self._open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
            created = True
        except FileExistsError:
            fd = self._open(name, os.O_RDWR | os.O_CREAT, mode)
            created = False
        return HostFile(fd, name, True, created=created)

    def discard(self, f: HostFile, *, emptied: bool) -> None:
        """Undo a creation that failed: the file :meth:`create` made is removed (if its
        name still names it), one that existed is truncated to nothing when ``emptied``
        (its old content is gone already); ``f`` is closed either way."""
        try:
            if f.created:
                self._remove(f)
            elif emptied:
                with contextlib.suppress(OSError):
                    f.truncate(0)
        finally:
            f.close()

    def _remove(self, f: HostFile) -> None:
        parent, base = os.path.split(f.name)
        flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            if self.root is None:
                dir_fd = os.open(parent or ".", flags)
            elif self._root_fd is None:
                return
            else:
                dir_fd = open_beneath(self._root_fd, self.beneath(parent or "."), flags)
        except OSError:
            return
        try:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == f.identity():
                os.unlink(base, dir_fd=dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        fd, self._root_fd = self._root_fd, None
        if fd is not None:
            os.close(fd)

    def _open(self, name: str, flags: int, mode: int = 0o644) -> int:
        _check_name(name)
        # O_NONBLOCK: a FIFO must not hang the engine before it is refused below
        flags |= os.O_CLOEXEC | os.O_NONBLOCK
        try:
            if self.root is None:
                fd = os.open(name, flags, mode)
            elif self._root_fd is None:     # closed: never fall back to plain names
                raise OSError(errno.EBADF, "the root is closed", name)
            else:
                fd = open_beneath(self._root_fd, self.beneath(name), flags, mode)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, name) from None
        try:
            self._check_opened(fd, name)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_opened(self, fd: int, name: str) -> None:
        """What was opened, checked on the descriptor itself."""
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", name)
        if self.root is not None:
            real = os.readlink(_PROC_FD + str(fd))
            if not real.startswith(self.root.rstrip("/") + "/") or real.endswith(" (deleted)"):
                raise OSError(errno.EACCES, os.strerror(errno.EACCES), name)


def _check_name(name: str) -> None:
    if "\0" in name or not name:
        # QEMU's C strings end at the NUL; no such file is looked up here (nor, as
        # open() answers, an empty name)
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), name)


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

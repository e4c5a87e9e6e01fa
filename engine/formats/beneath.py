"""Opening a name beneath a root directory's descriptor, so that nothing leaves it.

``blockgraph serve --root DIR`` promises that no command opens or creates a file
outside DIR, even while someone who can write inside DIR swaps names for symlinks.
A check of the path followed by an open of the same path cannot keep that promise
(the name can change in between), so the name is resolved by the kernel relative to
a descriptor of the root that was opened once:

- ``openat2(root_fd, name, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`` where the kernel
  has it (Linux 5.6): every component, ``..`` and symlink is resolved beneath the root,
  atomically, and anything that would leave it fails with ``EXDEV``;
- otherwise a walk component by component, each opened with ``O_NOFOLLOW`` relative
  to the descriptor of the one before; a symlink met on the way is read (``readlinkat``)
  and its target walked the same way from where it points, ``..`` never above the root.

Symlinks that stay inside the root are followed either way. Whatever leaves the root
fails with ``EACCES`` (QEMU's text: "Permission denied"), so an error does not tell
an attacker more than that.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_SYS_OPENAT2 = 437                     # the same number on every Linux architecture
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_MAX_SYMLINKS = 40                     # the kernel's limit (ELOOP beyond it)
_EAGAIN_TRIES = 8                      # openat2 calls before the walk takes over

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
#: None until the first call tells whether the kernel has openat2
_have_openat2: bool | None = None


def _refused(name: str) -> OSError:
    return OSError(errno.EACCES, os.strerror(errno.EACCES), name)


def _openat2(root_fd: int, rel: str, flags: int, mode: int) -> int | None:
    """The descriptor, or None when the kernel has no openat2 (or refuses its use).

    A name with ``..`` fails with EAGAIN when a rename or mount anywhere on the machine
    ran while the kernel resolved it (it cannot then prove that ``..`` stayed beneath
    the root): tried again a few times, then None, and the walk resolves it."""
    global _have_openat2
    if _have_openat2 is False:
        return None
    how = ctypes.create_string_buffer(
        struct.pack("QQQ", flags, mode if flags & os.O_CREAT else 0,
                    _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS), 24)
    for _ in range(_EAGAIN_TRIES):
        fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(root_fd),
                           ctypes.c_char_p(os.fsencode(rel)), how, ctypes.c_size_t(24))
        if fd >= 0:
            _have_openat2 = True
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            break
    else:
        return None
    if err in (errno.ENOSYS, errno.EPERM) and not _have_openat2:
        _have_openat2 = False          # no such call, or a seccomp filter forbids it
        return None
    if err == errno.EXDEV or (err == errno.ELOOP and _escapes(root_fd, rel)):
        raise _refused(rel)
    raise OSError(err, os.strerror(err), rel)


def _escapes(root_fd: int, rel: str) -> bool:
    """ELOOP from openat2: a magic link (a way out), or only a loop of symlinks?
    The walk tells, without opening anything outside the root."""
    try:
        fd = _walk(root_fd, rel, os.O_RDONLY | os.O_NONBLOCK, 0)
    except OSError as exc:
        return exc.errno != errno.ELOOP
    os.close(fd)
    return True


def open_beneath(root_fd: int, rel: str, flags: int, mode: int = 0o644,
                 *, use_openat2: bool = True) -> int:
    """Open ``rel`` (relative to the root) beneath ``root_fd``; OSError with ``rel`` as
    the file name. ``use_openat2=False`` forces the walk (for tests of the fallback)."""
    if rel.startswith("/"):
        raise _refused(rel)
    flags |= os.O_CLOEXEC
    if use_openat2:
        fd = _openat2(root_fd, rel, flags, mode)
        if fd is not None:
            return fd
    return _walk(root_fd, rel, flags, mode)


def _walk(root_fd: int, rel: str, flags: int, mode: int) -> int:
    """The fallback: one component at a time, ``O_NOFOLLOW``, symlinks resolved here."""
    stack = [os.dup(root_fd)]           # descriptors of the directories walked into
    todo = [c for c in rel.split("/") if c not in ("", ".")][::-1]
    links = 0
    try:
        if not todo:
            return os.open(".", flags | os.O_NOFOLLOW, mode, dir_fd=stack[-1])
        while todo:
            comp = todo.pop()
            if comp == "..":
                if len(stack) == 1:
                    raise _refused(rel)
                os.close(stack.pop())
                if not todo:
                    return os.open(".", flags | os.O_NOFOLLOW, mode, dir_fd=stack[-1])
                continue
            last = not todo
            try:
                if last:
                    return os.open(comp, flags | os.O_NOFOLLOW, mode, dir_fd=stack[-1])
                stack.append(os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW,
                                     dir_fd=stack[-1]))
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise OSError(exc.errno, exc.strerror, rel) from None
                try:
                    target = os.readlink(comp, dir_fd=stack[-1])
                except OSError:         # not a symlink: a real ENOTDIR/ELOOP
                    raise OSError(exc.errno, exc.strerror, rel) from None
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), rel)
            if target.startswith("/"):  # absolute: never beneath a root walked by name
                raise _refused(rel)
            todo.extend(c for c in target.split("/")[::-1] if c not in ("", "."))
            if not todo:
                return os.open(".", flags | os.O_NOFOLLOW, mode, dir_fd=stack[-1])
        raise AssertionError("unreachable")
    finally:
        for fd in stack:
            os.close(fd)

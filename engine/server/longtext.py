"""Long strings of a QMP message, put together without holding up the event loop.

A 60 MiB string arrives in hundreds of reads, and :class:`~engine.server.jsontext.
StringDecoder` decodes its pieces as they come. Joining the pieces into one ``str`` is
a single C call that copies 60 MiB into freshly mapped memory: about 100 ms, most of
it the kernel mapping the new pages on first touch, during which the interpreter's
lock (the GIL) is held — so no other thread runs, the event loop included, whichever
thread does the join.

So the stream hands such a string over as a :class:`LongString` (its pieces) inside a
:class:`PendingMessage`, and the server completes the message on its worker thread
with :func:`join_released`: the ``str`` is allocated empty (``PyUnicode_New``) and the
pieces are copied in by foreign calls through :mod:`ctypes`, which release the GIL
for the call (``process_vm_readv`` on this process, a thousand pieces in one call;
``memmove`` where that is refused), so the page faults and the copying happen while
the loop serves the other clients. The copy writes a string nobody else holds yet, in the layout the
interpreter gave it, exactly as C code fills a new string; the layout is checked once
at import against ordinary joins, and where the check fails (another interpreter, an
unknown layout) the pieces are joined the ordinary way.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

#: decoded strings from this many characters on are handed over as :class:`LongString`
LONG_STRING = 1 << 20


class LongString:
    """A string still in pieces (see the module's docstring); ``len()`` is its length."""

    __slots__ = ("length", "parts")

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self.length = sum(map(len, parts))

    def __len__(self) -> int:
        return self.length

    def join(self) -> str:
        """The string, joined here and now (holds the GIL for the whole copy)."""
        return "".join(self.parts)


class PendingMessage:
    """A parsed message with :class:`LongString` values still in it, and where they are.

    ``places`` lists ``(container, key)`` for every long value (``key`` a member name
    or a list index); :meth:`complete` puts the joined strings there.
    """

    __slots__ = ("places", "value")

    def __init__(self, value: Any, places: list[tuple[Any, Any]]) -> None:
        self.value = value
        self.places = places

    def complete(self) -> Any:
        """The message with every long string joined (call off the event loop)."""
        for container, key in self.places:
            container[key] = join_released(container[key].parts)
        if isinstance(self.value, LongString):
            self.value = join_released(self.value.parts)
        return self.value


# -- the copy without the GIL -------------------------------------------------------------

_memmove = ctypes.memmove     # foreign functions: the GIL is released during the call
_memset = ctypes.memset
#: bytes before the characters of a compact ``str``: ASCII ones, and the others
_ASCII_HEADER = sys.getsizeof("") - 1
_COMPACT_HEADER = sys.getsizeof("\xff") - 2
#: storage width (bytes per character) -> (the largest character, its codec)
_WIDTHS = {1: (0xFF, "latin-1"), 2: (0xFFFF, "utf-16-le"), 4: (0x10FFFF, "utf-32-le")}


def _new_str() -> Any:
    new = ctypes.pythonapi.PyUnicode_New
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_ssize_t, ctypes.c_uint32)
    return new


def _width(part: str) -> int:
    """Bytes per character in ``part``'s storage (the narrowest that holds its largest
    character, as CPython keeps every string); 0 for ASCII."""
    if part.isascii():
        return 0
    try:
        part.encode("latin-1")
    except UnicodeEncodeError:
        wide = len(part.encode("utf-16-le", "surrogatepass")) > 2 * len(part)
        return 4 if wide else 2
    return 1


def _copy_joined(parts: list[str]) -> str:
    widths = [_width(part) for part in parts]
    widest = max(widths, default=0)
    maxchar, codec = _WIDTHS[widest] if widest else (0x7F, "ascii")
    size = sum(map(len, parts))
    text: str = _PYUNICODE_NEW(size, maxchar)
    at = id(text) + (_ASCII_HEADER if widest == 0 else _COMPACT_HEADER)
    unit = max(widest, 1)
    run_at, run = at, []          # same storage: straight from the parts' characters
    for part, width in zip(parts, widths, strict=True):
        if not part:
            continue
        if max(width, 1) == unit:
            header = _ASCII_HEADER if width == 0 else _COMPACT_HEADER
            run.append((id(part) + header, len(part) * unit))
        else:                     # narrower: widened by its codec first
            _gather(run_at, run)
            data = part.encode(codec)
            _memmove(at, data, len(data))
            run_at, run = at + len(data), []
        at += len(part) * unit
    _gather(run_at, run)
    return text


def _gather(at: int, sources: list[tuple[int, int]]) -> None:
    """Copy the ``(address, size)`` sources one after the other to ``at``.

    A 60 MiB string comes in about a thousand parts. Copied one ``memmove`` at a time,
    the lock is released for each copy and taken back between them, and a thread
    holding it then may be preempted — which, on a busy machine, leaves the event
    loop waiting for the lock as long as that thread waits for a CPU. So the parts
    are gathered by ``process_vm_readv`` on this very process, up to
    :data:`_IOV_MAX` of them in one system call made with the lock released; where
    that call is refused, by ``memmove`` after the page faults of the target are
    taken in one ``memset``.
    """
    if not sources:
        return
    start = 0
    if _PROCESS_VM_READV is not None:
        pid = os.getpid()
        while start < len(sources):
            batch = sources[start:start + _IOV_MAX]
            total = sum(size for _, size in batch)
            # ctypes makes each (address, size) tuple an _IOVec; mypy knows no such rule
            remote = (_IOVec * len(batch))(*batch)  # type: ignore[misc]
            done = _PROCESS_VM_READV(pid, ctypes.byref(_IOVec(at, total)), 1,
                                     remote, len(batch), 0)
            if done != total:     # refused (or cut short): copy the rest below
                break
            start += len(batch)
            at += total
    rest = sources[start:]
    if rest:
        _memset(at, 0, sum(size for _, size in rest))
        for address, size in rest:
            _memmove(at, address, size)
            at += size


def _layout_holds() -> bool:
    """Whether :func:`_copy_joined` gives exactly what ``str.join`` gives here."""
    if sys.implementation.name != "cpython":
        return False
    samples = [["ab", "cd"], ["a", "\xe9", "b"], ["\xe9", "\u0101x"],
               ["x", "\U0001f600", "\xe9", "\u0101"], ["", "z"], ["\u0101", ""]]
    try:
        for parts in samples:
            joined = _copy_joined(parts)
            expected = "".join(parts)
            if joined != expected or sys.getsizeof(joined) != sys.getsizeof(expected) \
                    or hash(joined) != hash(expected):
                return False
    except Exception:   # any surprise means: join the ordinary way
        return False
    return True


class _IOVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


#: sources one ``process_vm_readv`` call takes (Linux's IOV_MAX)
_IOV_MAX = 1024


def _process_vm_readv() -> Any:
    try:
        call = ctypes.CDLL(None, use_errno=True).process_vm_readv
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.POINTER(_IOVec), ctypes.c_ulong,
                     ctypes.POINTER(_IOVec), ctypes.c_ulong, ctypes.c_ulong)
    call.restype = ctypes.c_ssize_t
    return call


_PROCESS_VM_READV = _process_vm_readv()

try:
    _PYUNICODE_NEW = _new_str()
except (AttributeError, OSError):     # no C API to call (not CPython)
    _PYUNICODE_NEW = None
#: whether strings are joined without the GIL (see :func:`_layout_holds`)
RELEASES_GIL = _PYUNICODE_NEW is not None and _layout_holds()


def join_released(parts: list[str]) -> str:
    """``"".join(parts)``, copying with the GIL released where the layout allows."""
    if RELEASES_GIL:
        return _copy_joined(parts)
    return "".join(parts)

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
pieces are copied in by ``memmove`` called through :mod:`ctypes`, which releases the
GIL for the call, so the page faults and the copying happen while the loop serves
the other clients. The copy writes a string nobody else holds yet, in the layout the
interpreter gave it, exactly as C code fills a new string; the layout is checked once
at import against ordinary joins, and where the check fails (another interpreter, an
unknown layout) the pieces are joined the ordinary way.
"""

from __future__ import annotations

import ctypes
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

_memmove = ctypes.memmove     # a foreign function: the GIL is released during the call
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
    for part, width in zip(parts, widths, strict=True):
        if not part:
            continue
        if max(width, 1) == unit:     # same storage: straight from the part's characters
            header = _ASCII_HEADER if width == 0 else _COMPACT_HEADER
            _memmove(at, id(part) + header, len(part) * unit)
        else:                         # narrower: widened by its codec first
            data = part.encode(codec)
            _memmove(at, data, len(data))
        at += len(part) * unit
    return text


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

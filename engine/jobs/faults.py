"""Injected I/O failures for jobs, the engine's counterpart of QEMU's ``blkdebug``.

QEMU's tests make a job fail by putting a ``blkdebug`` node with ``inject-error``
under an image. The engine has a smaller seam: a :class:`FaultInjector` holds
rules (file path, read or write, byte range, errno, once), and jobs wrap each
image they touch in :class:`FaultyImage`, which raises the configured error
before the real I/O happens. Images without a matching rule are not wrapped.

The same rules also work one level down, on the image *file*: install
:meth:`FaultInjector.check` as the hook of :mod:`engine.formats.fileio` (the one
seam every read, write, sync and truncate of an image file goes through) and a
rule's offsets are host file offsets, so a qcow2 metadata update, a header
rewrite or an image creation can be failed half-way (ops ``"flush"`` and
``"truncate"`` exist only there).
"""

from __future__ import annotations

import errno as errno_mod
import os
import threading
from dataclasses import dataclass
from typing import Any

#: what a rule can fail; "flush" and "truncate" only at the file level (engine.formats.fileio)
OPS = ("read", "write", "flush", "truncate")


@dataclass
class FaultRule:
    """Fail ``op`` (one of :data:`OPS`) on ``path`` overlapping ``[offset, offset+length)``."""

    path: str
    op: str
    errno: int = errno_mod.EIO
    offset: int = 0
    length: int | None = None
    once: bool = False
    hits: int = 0

    def matches(self, path: str, op: str, offset: int, length: int) -> bool:
        if op != self.op or os.path.realpath(path) != os.path.realpath(self.path):
            return False
        if self.once and self.hits:
            return False
        end = None if self.length is None else self.offset + self.length
        if not length:      # a flush, a truncate: a point, not a range
            return offset >= self.offset and (end is None or offset < end)
        return offset + length > self.offset and (end is None or offset < end)


class InjectedIOError(OSError):
    """The error a fault rule raised (an OSError with the rule's errno)."""


class FaultInjector:
    """The rules of one engine; tests add and clear them while jobs run."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, path: str | os.PathLike[str], op: str = "read", *, errno: int = errno_mod.EIO,
            offset: int = 0, length: int | None = None, once: bool = False) -> FaultRule:
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}")
        rule = FaultRule(os.fspath(path), op, errno, offset, length, once)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def has_rules_for(self, path: str) -> bool:
        real = os.path.realpath(path)
        with self._lock:
            return any(os.path.realpath(r.path) == real for r in self._rules)

    def check(self, path: str, op: str, offset: int, length: int) -> None:
        """Raise the first matching rule's error (counting a hit), else return."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(path, op, offset, length):
                    rule.hits += 1
                    raise InjectedIOError(rule.errno, os.strerror(rule.errno), path)

    def wrap(self, image: Any) -> Any:
        """``image`` itself, or a FaultyImage when some rule names its file."""
        if self.has_rules_for(image.path):
            return FaultyImage(image, self)
        return image


class FaultyImage:
    """An Image proxy that consults the injector before reading or writing."""

    def __init__(self, image: Any, injector: FaultInjector) -> None:
        self._image = image
        self._faults = injector

    def __getattr__(self, name: str) -> Any:
        return getattr(self._image, name)

    def read(self, offset: int, length: int) -> bytes:
        self._faults.check(self._image.path, "read", offset, length)
        return bytes(self._image.read(offset, length))

    def readinto(self, offset: int, view: memoryview, backing: Any = None, **kw: Any) -> None:
        # Like blkdebug's read_aio, only reads that reach the file fail: ranges this
        # layer stores as data, not zero or unallocated ones.
        for ext in self._image.block_status(offset, len(view)):
            if ext.state == "data":
                self._faults.check(self._image.path, "read", ext.start, ext.length)
        self._image.readinto(offset, view, backing, **kw)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._faults.check(self._image.path, "write", offset, len(data))
        self._image.write(offset, data)

    def write_zeroes(self, offset: int, length: int) -> None:
        self._faults.check(self._image.path, "write", offset, length)
        self._image.write_zeroes(offset, length)

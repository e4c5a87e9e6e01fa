"""Injected I/O failures, the engine's counterpart of QEMU's ``blkdebug``.

QEMU's tests make a job fail by putting a ``blkdebug`` node with ``inject-error``
under an image. The engine has a smaller seam: a :class:`FaultInjector` holds
rules (file path, read or write, byte range, errno, once), and every node's I/O
(:mod:`engine.graph.io`) consults it while it has rules: a read fails where the
layer whose image file a rule names holds data, a write wherever it overlaps.

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
        #: whether any rule exists (checked on every request, so a plain attribute)
        self.active = False

    def add(self, path: str | os.PathLike[str], op: str = "read", *, errno: int = errno_mod.EIO,
            offset: int = 0, length: int | None = None, once: bool = False) -> FaultRule:
        if op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}")
        rule = FaultRule(os.fspath(path), op, errno, offset, length, once)
        with self._lock:
            self._rules.append(rule)
            self.active = True
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.active = False

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

"""Fault-injection helpers: fail the k-th file operation, and check images afterwards.

:class:`NthCall` is a fault hook for :mod:`engine.formats.fileio`: it counts the
calls of one kind (``write``, ``flush``, ...) on one file and raises ``errno`` on
the k-th (and, with ``sticky``, every later one — a full disk stays full). Tests
sweep k over every call an operation makes, so each point where the operation can
be interrupted is tried once.
"""

from __future__ import annotations

import errno as errno_mod
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.qemu import qemu_img


@dataclass
class NthCall:
    """Raise ``OSError(errno)`` on the ``nth`` matching call (1-based)."""

    path: str
    op: str
    nth: int
    errno: int = errno_mod.ENOSPC
    sticky: bool = True
    seen: int = 0
    fired: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, path: str, op: str, offset: int, length: int) -> None:
        if op != self.op or os.path.realpath(path) != os.path.realpath(self.path):
            return
        with self._lock:
            self.seen += 1
            if self.seen == self.nth or (self.sticky and self.seen > self.nth):
                self.fired += 1
                raise OSError(self.errno, os.strerror(self.errno), path)


@dataclass
class Counter:
    """Counts matching calls (to learn how many points an operation has)."""

    path: str
    op: str
    seen: int = 0

    def __call__(self, path: str, op: str, offset: int, length: int) -> None:
        if op == self.op and os.path.realpath(path) == os.path.realpath(self.path):
            self.seen += 1


def check_intact(path: str | os.PathLike[str], fmt: str = "qcow2") -> dict[str, Any]:
    """``qemu-img check``: no corruption and no check errors.

    Leaked clusters are allowed (exit status 3): an allocation interrupted after its
    refcounts were written but before the L2 entry was leaks them — QEMU's own
    crash-safe ordering gives the same result, and ``qemu-img check -r leaks`` frees them.
    """
    proc = qemu_img("check", "--output=json", "-f", fmt, str(path), check=False)
    assert proc.returncode in (0, 3), (
        f"qemu-img check {path} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    assert report.get("check-errors", 0) == 0, report
    assert not report.get("corruptions"), report
    return report


def guest_bytes(path: str | os.PathLike[str]) -> bytes:
    """The guest view of an image with its backing chain, read by qemu-img (not by us)."""
    out = Path(str(path) + ".guest.raw")
    qemu_img("convert", "-O", "raw", str(path), str(out))
    try:
        return out.read_bytes()
    finally:
        out.unlink()

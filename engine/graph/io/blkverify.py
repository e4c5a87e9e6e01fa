"""``blkverify``: every request goes to two children, ``test`` and ``raw``, whose guest
bytes must agree.

Reads are made on both and compared; writes go to both and must succeed or fail
alike. QEMU quits the whole process on a mismatch after printing why on standard
error (``blkverify: read offset=N bytes=N contents mismatch at offset N``); the
engine prints the same line and hands it to :attr:`IOContext.fatal`: the hosts that
stand in for QEMU (``blockgraph serve``, ``blockgraph qemu``) quit with status 1 as it
does, closing nothing, so their clients see the monitor go; inside the desktop
application, which must not vanish under its user, the request fails with EIO. The node's
length is ``test``'s; flushes go to ``test`` only.
"""

from __future__ import annotations

import errno
import sys

from engine.graph.io.base import NodeIO, Pending


class BlkverifyIO(NodeIO):
    """The ``blkverify`` filter (see the module doc)."""

    clamps = True

    def _children(self) -> tuple[NodeIO, NodeIO]:
        test, raw = self.child_io("test"), self.child_io("raw")
        if test is None or raw is None:
            raise OSError(errno.ENOMEDIUM, "No medium found")
        return test, raw

    def _own_length(self) -> int:
        return self._children()[0].length()

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        test, raw = self._children()
        copy = bytearray(len(view))
        failures = []
        for io, target in ((test, view), (raw, memoryview(copy))):
            try:
                io.readinto(offset, target)
                failures.append(0)
            except OSError as exc:
                failures.append(exc.errno or errno.EIO)
        self._check_returns("read", offset, len(view), failures)
        if failures[0]:
            raise OSError(failures[0], "blkverify: test read failed")
        if view != copy:
            at = next(i for i in range(len(view)) if view[i] != copy[i])
            self._mismatch("read", offset, len(view), f"contents mismatch at offset "
                           f"{offset + at}")
        return []

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        test, raw = self._children()
        failures = []
        for io in (test, raw):
            try:
                io.write(offset, data)
                failures.append(0)
            except OSError as exc:
                failures.append(exc.errno or errno.EIO)
        self._check_returns("write", offset, len(data), failures)
        if failures[0]:
            raise OSError(failures[0], "blkverify: write failed")

    def _check_returns(self, op: str, offset: int, length: int, failures: list[int]) -> None:
        if failures[0] != failures[1]:
            self._mismatch(op, offset, length, f"return value mismatch {-failures[0]} != "
                                               f"{-failures[1]}")

    def _mismatch(self, op: str, offset: int, length: int, what: str) -> None:
        message = f"blkverify: {op} offset={offset} bytes={length} {what}"
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        self.ctx.fatal(message)

    def _flush_own(self) -> None:
        """The children flush themselves (``raw`` too: harmless, and never observed)."""

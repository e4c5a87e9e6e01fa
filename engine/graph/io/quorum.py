"""``quorum``: every write goes to all children, a read is voted on, as QEMU 7.2 does.

The children are links named ``children.N`` (in the order QEMU keeps them: as given at
open, then as ``x-blockdev-change`` adds them). A request counts the children that
served it: fewer successes than ``vote-threshold`` fail it with the errno most of
the failed children answered (a tie: the errno whose first answer came last, as
QEMU's vote list puts new versions first) and a ``QUORUM_FAILURE`` event. Every
child that fails reports ``QUORUM_REPORT_BAD`` with its error.

Reads with ``read-pattern`` ``quorum`` (the default) read every child; when the
successful reads differ, the most frequent version wins if at least
``vote-threshold`` children share it (else ``QUORUM_FAILURE`` and EIO); each child
with another version reports ``QUORUM_REPORT_BAD`` without an error, and with
``rewrite-corrupted`` gets the winning data written back. With ``blkverify`` (two
children, threshold two) a difference is fatal: QEMU prints where on standard error
and ends the process; the engine prints the same line, and its host quits (``blockgraph
serve``, ``blockgraph qemu``) or fails the read with EIO (the desktop application).
``fifo`` reads the first child, the next one only
when it fails.

Block status (what ``qemu-img map``, mirror and zero writes below an overlay see): a
range is zeros where every child's whole chain reads as zeros by allocation, and data
everywhere else; never unallocated.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import itertools
import os
import sys
from typing import Any

from engine.formats.errors import ImageError
from engine.formats.image import Extent
from engine.graph.io.base import Node, NodeIO, Pending
from engine.graph.io.chain_status import chain_zeroes
from engine.graph.io.context import IOContext

SECTOR = 512
PREFIX = "children."


def _errno(exc: BaseException) -> int:
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


def _zero_at(runs: list[tuple[int, int, bool]], starts: list[int], position: int) -> bool:
    """Whether the run holding ``position`` reads as zeros (``runs`` are sorted, and
    ``starts`` are their starts)."""
    i = bisect.bisect_right(starts, position) - 1
    if i < 0:
        return False
    start, n, zero = runs[i]
    return zero and start <= position < start + n


def _winner(counts: list[tuple[Any, int]]) -> int:
    """The index into ``counts`` (oldest version first) of the version QEMU picks: the
    newest of those with the most votes."""
    best, best_count = -1, 0
    for i in range(len(counts) - 1, -1, -1):
        if counts[i][1] > best_count:
            best, best_count = i, counts[i][1]
    return best


class QuorumIO(NodeIO):
    """The ``quorum`` driver (see the module doc)."""

    def __init__(self, node: Node, ctx: IOContext) -> None:
        super().__init__(node, ctx)
        #: the index the next added child is named after (QEMU's next_child_index)
        self.next_index = len(node.options.get("children", []))

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        children = options.get("children", [])
        if len(children) < 1:
            return "Number of provided children must be 1 or more"
        threshold = int(options.get("vote-threshold", 0))
        if threshold < 1:
            return "Parameter 'vote-threshold' expects a value >= 1"
        if threshold > len(children):
            return "threshold may not exceed children count"
        if options.get("read-pattern", "quorum") == "quorum":
            blkverify = bool(options.get("blkverify", False))
            if blkverify and (len(children) != 2 or threshold != 2):
                return ("blkverify=on can only be set if there are exactly two files and "
                        "vote-threshold is 2")
            if blkverify and options.get("rewrite-corrupted", False):
                return "rewrite-corrupted=on cannot be used with blkverify=on"
        return None

    # -- settings ------------------------------------------------------------------------
    @property
    def threshold(self) -> int:
        return int(self.node.options["vote-threshold"])

    @property
    def fifo(self) -> bool:
        return bool(self.node.options.get("read-pattern", "quorum") == "fifo")

    @property
    def blkverify(self) -> bool:
        return not self.fifo and bool(self.node.options.get("blkverify", False))

    @property
    def rewrite(self) -> bool:
        return not self.fifo and bool(self.node.options.get("rewrite-corrupted", False))

    def children(self) -> list[tuple[str, NodeIO]]:
        """(node name, I/O) of every child, in QEMU's order."""
        out = []
        for role, link in self.node.children.items():
            if role.startswith(PREFIX):
                if link.child.io is None:
                    raise OSError(errno.ENOMEDIUM, "No medium found")
                out.append((link.child.name, link.child.io))
        return out

    # -- events ----------------------------------------------------------------------------
    def _report_bad(self, op: str, offset: int, length: int, name: str,
                    err: int | None) -> None:
        first = offset // SECTOR
        data: dict[str, Any] = {"type": op}
        if err is not None:
            data["error"] = os.strerror(err)
        data.update({"node-name": name, "sector-num": first,
                     "sectors-count": -(-(offset + length) // SECTOR) - first})
        self.ctx.event_throttle.send("QUORUM_REPORT_BAD", data, self.ctx.emit)

    def _report_failure(self, offset: int, length: int) -> None:
        first = offset // SECTOR
        self.ctx.event_throttle.send("QUORUM_FAILURE", {
            "reference": self.node.name, "sector-num": first,
            "sectors-count": -(-(offset + length) // SECTOR) - first}, self.ctx.emit)

    def _fail(self, offset: int, length: int, errors: list[int]) -> OSError:
        """Too few successes: the voted errno, after ``QUORUM_FAILURE``."""
        counts: list[tuple[Any, int]] = []
        for err in errors:
            for i, (value, n) in enumerate(counts):
                if value == err:
                    counts[i] = (value, n + 1)
                    break
            else:
                counts.append((err, 1))
        self._report_failure(offset, length)
        code = counts[_winner(counts)][0] if counts else errno.EIO
        return OSError(code, os.strerror(code))

    # -- sizes -----------------------------------------------------------------------------
    def _own_length(self) -> int:
        lengths = {io.length() for _, io in self.children()}
        if len(lengths) != 1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return lengths.pop()

    def _own_actual_size(self) -> int | None:
        # QEMU sums what its children allocate (unknown if one of them cannot tell)
        sizes = [io.actual_size() for _, io in self.children()]
        return None if None in sizes else sum(size or 0 for size in sizes)

    def _block_status(self, offset: int, length: int) -> list[Extent]:
        end = offset + length
        cuts = {offset, end}
        per_child = []
        for _, io in self.children():
            runs = chain_zeroes(io, offset, length)
            per_child.append(runs)
            cuts.update(start for start, _, _ in runs)
        points = sorted(c for c in cuts if offset <= c <= end)
        out: list[Extent] = []
        starts = [[start for start, _, _ in runs] for runs in per_child]
        for a, b in itertools.pairwise(points):
            zero = all(_zero_at(runs, firsts, a) for runs, firsts in zip(per_child, starts,
                                                                         strict=True))
            state = "zero" if zero else "data"
            if out and out[-1].state == state:
                out[-1] = Extent(out[-1].start, out[-1].length + b - a, state)
            else:
                out.append(Extent(a, b - a, state))
        return out

    # -- reads -----------------------------------------------------------------------------
    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        if self.fifo:
            self._read_fifo(offset, view)
        else:
            self._read_vote(offset, view)
        return []

    def _read_fifo(self, offset: int, view: memoryview) -> None:
        failure: BaseException | None = None
        for name, io in self.children():
            try:
                io.readinto(offset, view)
                return
            except (OSError, ImageError) as exc:
                self._report_bad("read", offset, len(view), name, _errno(exc))
                failure = exc
        assert failure is not None
        raise failure

    def _read_vote(self, offset: int, view: memoryview) -> None:
        length = len(view)
        reads: list[tuple[str, NodeIO, bytes | None]] = []
        errors: list[int] = []
        for name, io in self.children():
            buf = bytearray(length)
            try:
                io.readinto(offset, memoryview(buf))
                reads.append((name, io, bytes(buf)))
            except (OSError, ImageError) as exc:
                self._report_bad("read", offset, length, name, _errno(exc))
                errors.append(_errno(exc))
                reads.append((name, io, None))
        good = [r for r in reads if r[2] is not None]
        if len(good) < self.threshold:
            raise self._fail(offset, length, errors)
        first = good[0][2]
        assert first is not None
        if all(data == first for _, _, data in good[1:]):
            view[:] = first
            return
        if self.blkverify:
            other = good[1][2]
            assert other is not None
            at = next(i for i in range(len(first)) if first[i] != other[i])
            message = (f"quorum: offset={offset} bytes={length} contents mismatch at "
                       f"offset {offset + at}")
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
            self.ctx.fatal(message)
        versions: list[tuple[bytes, int]] = []       # oldest first
        members: list[list[tuple[str, NodeIO]]] = []
        for name, io, data in good:
            assert data is not None
            for i, (value, n) in enumerate(versions):
                if value == data:
                    versions[i] = (value, n + 1)
                    members[i].append((name, io))
                    break
            else:
                versions.append((data, 1))
                members.append([(name, io)])
        win = _winner(versions)
        if versions[win][1] < self.threshold:
            self._report_failure(offset, length)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view[:] = versions[win][0]
        # QEMU lists versions and their children newest first
        bad = [child for i in range(len(versions) - 1, -1, -1) if i != win
               for child in reversed(members[i])]
        for name, _ in bad:
            self._report_bad("read", offset, length, name, None)
        if self.rewrite:
            for _, io in bad:
                with contextlib.suppress(OSError, ImageError):    # an attempt, as in QEMU
                    io.write(offset, view)

    # -- writes ----------------------------------------------------------------------------
    def _each_child(self, offset: int, length: int, op: Any) -> None:
        errors: list[int] = []
        ok = 0
        for name, io in self.children():
            try:
                op(io)
                ok += 1
            except (OSError, ImageError) as exc:
                self._report_bad("write", offset, length, name, _errno(exc))
                errors.append(_errno(exc))
        if ok < self.threshold:
            raise self._fail(offset, length, errors)

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._each_child(offset, len(data), lambda io: io.write(offset, data))

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        self._each_child(offset, length,
                         lambda io: io.write_zeroes(offset, length, unmap=unmap))

    def _flush_own(self) -> None:
        """Children flush themselves (the flush walks down every child link)."""

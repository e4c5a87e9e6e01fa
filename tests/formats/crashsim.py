"""Record the writes an operation makes, then replay every crash point.

Between two barriers (``fdatasync``) the storage may persist writes in any
order and only whole 512-byte sectors are atomic, so each recorded write is cut
into sectors, and a crash state is: every sector of the earlier epochs, plus a
subset of the current epoch's sectors (all subsets when there are few, else
every prefix and every suffix).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SECTOR = 512
Piece = tuple[int, bytes]


class Recorder:
    def __init__(self) -> None:
        self.epochs: list[list[Piece]] = [[]]

    def add(self, offset: int, data: bytes) -> None:
        pos, end = offset, offset + len(data)
        while pos < end:
            stop = min(end, (pos // SECTOR + 1) * SECTOR)
            self.epochs[-1].append((pos, data[pos - offset:stop - offset]))
            pos = stop

    def barrier(self) -> None:
        if self.epochs[-1]:
            self.epochs.append([])

    def crash_states(self, max_subset: int = 10) -> Iterator[list[Piece]]:
        done: list[Piece] = []
        for epoch in self.epochs:
            if len(epoch) <= max_subset:
                choices = itertools.chain.from_iterable(
                    itertools.combinations(epoch, k) for k in range(len(epoch) + 1))
            else:
                choices = itertools.chain((epoch[:k] for k in range(len(epoch) + 1)),
                                          (epoch[k:] for k in range(len(epoch))))
            for subset in choices:
                yield done + list(subset)
            done = done + epoch


@contextmanager
def recording(monkeypatch: pytest.MonkeyPatch, fd_of: Callable[[], int | None]
              ) -> Iterator[Recorder]:
    """Record pwrite/pwritev/fdatasync on the file descriptor ``fd_of()``."""
    rec = Recorder()
    real_pwrite, real_pwritev, real_sync = os.pwrite, os.pwritev, os.fdatasync

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if fd == fd_of():
            rec.add(offset, bytes(data))
        return real_pwrite(fd, data, offset)

    def pwritev(fd: int, bufs: list, offset: int) -> int:
        if fd == fd_of():
            rec.add(offset, b"".join(bytes(b) for b in bufs))
        return real_pwritev(fd, bufs, offset)

    def fdatasync(fd: int) -> None:
        if fd == fd_of():
            rec.barrier()
        real_sync(fd)

    with monkeypatch.context() as m:
        m.setattr(os, "pwrite", pwrite)
        m.setattr(os, "pwritev", pwritev)
        m.setattr(os, "fdatasync", fdatasync)
        yield rec


def apply(original: Path, pieces: list[Piece], out: Path) -> Path:
    shutil.copyfile(original, out)
    with out.open("r+b") as f:
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
    return out

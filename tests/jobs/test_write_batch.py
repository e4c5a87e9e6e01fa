"""The job's write batch: batches written on a writer thread, in order, errors kept.

A batch is handed to the writer thread while the job reads the next one. What a
job relies on: every byte lands where it was read for, in the order it was handed
in; a failed write surfaces as a write (target) error at the next hand-off or
flush and is written again first by the retry; nothing is written after the batch
is closed.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable

import pytest

from engine.jobs.copy import CopyError, WriteBatch

KIB = 1 << 10


class Target:
    """An image stand-in that records writes; ``fail`` makes the next writes fail."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.writes: list[tuple[str, int, int]] = []
        self.fail = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write(self, offset: int, view: memoryview) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data[offset:offset + len(view)] = view
        self.writes.append(("data", offset, len(view)))

    def write_begin(self, offset: int, view: memoryview) -> Callable[[], None]:
        """As a node in write-back mode: the data is written by what is returned."""
        return lambda: self.write(offset, view)

    def write_zeroes(self, offset: int, length: int) -> None:
        self.data[offset:offset + length] = bytes(length)
        self.writes.append(("zeroes", offset, length))


def _fill(batch: WriteBatch, start: int, n: int, byte: int) -> None:
    view, batched = batch.view_for(start, n)
    assert batched
    view[:] = bytes([byte]) * n


def test_batches_land_in_order_with_zeroes_between() -> None:
    target = Target(1 << 20)
    with WriteBatch(target, limit=64 * KIB) as batch:
        for i in range(8):                       # 8 × 32 KiB: four batches of 64 KiB
            _fill(batch, i * 32 * KIB, 32 * KIB, i + 1)
        batch.write_zeroes(256 * KIB, 64 * KIB)
        _fill(batch, 320 * KIB, 32 * KIB, 9)
        batch.flush()
    assert target.writes == [("data", 0, 64 * KIB), ("data", 64 * KIB, 64 * KIB),
                             ("data", 128 * KIB, 64 * KIB), ("data", 192 * KIB, 64 * KIB),
                             ("zeroes", 256 * KIB, 64 * KIB), ("data", 320 * KIB, 32 * KIB)]
    for i in range(8):
        assert target.data[i * 32 * KIB:(i + 1) * 32 * KIB] == bytes([i + 1]) * 32 * KIB
    assert target.data[320 * KIB:352 * KIB] == b"\x09" * 32 * KIB


def test_a_failed_write_surfaces_as_a_write_error_and_is_written_again() -> None:
    target = Target(1 << 20)
    with WriteBatch(target, limit=64 * KIB) as batch:
        target.fail = 1
        _fill(batch, 0, 64 * KIB, 1)
        _fill(batch, 64 * KIB, 64 * KIB, 2)      # hands the first batch to the writer
        with pytest.raises(CopyError) as caught:
            _fill(batch, 128 * KIB, 64 * KIB, 3)   # the next hand-off sees it fail
        assert not caught.value.is_read and caught.value.errno == errno.ENOSPC
        assert target.writes == []
        batch.flush()                            # the retry: the failed batch first
    assert [w[1] for w in target.writes] == [0, 64 * KIB]
    assert target.data[:64 * KIB] == b"\x01" * 64 * KIB
    assert target.data[64 * KIB:128 * KIB] == b"\x02" * 64 * KIB


def test_a_failure_in_flush_stays_pending_until_a_retry_succeeds() -> None:
    target = Target(1 << 20)
    batch = WriteBatch(target, limit=64 * KIB)
    _fill(batch, 0, 64 * KIB, 1)
    _fill(batch, 64 * KIB, 16 * KIB, 2)
    target.fail = 2
    for _ in range(2):
        with pytest.raises(CopyError):
            batch.flush()
    batch.flush()
    batch.close()
    assert [w[1:] for w in target.writes] == [(0, 64 * KIB), (64 * KIB, 16 * KIB)]


def test_closing_waits_for_the_write_in_flight() -> None:
    target = Target(1 << 20)
    target.gate.clear()
    batch = WriteBatch(target, limit=64 * KIB)
    _fill(batch, 0, 64 * KIB, 1)
    _fill(batch, 64 * KIB, 64 * KIB, 2)          # the first batch is now in flight
    opener = threading.Thread(target=lambda: target.entered.wait(10) and target.gate.set())
    opener.start()
    batch.close()                                # a cancelled job: nothing written later
    done = list(target.writes)
    opener.join()
    assert done == [("data", 0, 64 * KIB)]


def test_without_background_every_batch_is_written_by_the_callers_thread() -> None:
    threads: list[str] = []

    class Watching(Target):
        def write(self, offset: int, view: memoryview) -> None:
            threads.append(threading.current_thread().name)
            super().write(offset, view)

    target = Watching(1 << 20)
    with WriteBatch(target, limit=64 * KIB, background=False) as batch:
        _fill(batch, 0, 64 * KIB, 1)
        _fill(batch, 64 * KIB, 64 * KIB, 2)      # the first batch is written here and now
        assert target.writes == [("data", 0, 64 * KIB)]
        batch.flush()
    assert threads == [threading.current_thread().name] * 2
    assert target.data[:128 * KIB] == b"\x01" * 64 * KIB + b"\x02" * 64 * KIB

"""A write begun in write-back mode and finished by another thread (what a job's batch
does so that reading the next batch overlaps writing the one before).

What must hold while its data is in flight: a read of its range returns the new data
(it waits for it), a read elsewhere and an allocation query do not wait; a data write
that fails takes back its own request only (the range reads as before, the image stays
clean); once flushed, ``qemu-img check`` is clean and the bytes are those written.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.formats import create_qcow2, fileio, open_image
from engine.formats.buffers import aligned_buffer
from engine.formats.qcow2 import Qcow2Image
from tests.support.qemu import check, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20
DEADLINE = 20.0


def _image(tmp_path: Path) -> Qcow2Image:
    path = tmp_path / "t.qcow2"
    create_qcow2(path, 64 * MiB)
    qemu_io(path, f"write -P 0x11 {8 * MiB} {MiB}")
    img = open_image(path, writable=True)
    assert isinstance(img, Qcow2Image)
    img.begin_write_back()
    return img


def _batch(byte: int, n: int = 2 * MiB) -> memoryview:
    """Page-aligned data, as a job's batch is (so it qualifies for direct writes)."""
    buf = memoryview(aligned_buffer(n))
    buf[:] = bytes([byte]) * n
    return buf


@contextmanager
def _writes_held(path: str) -> Iterator[threading.Event]:
    """Writes to ``path`` block until the returned event is set."""
    gate = threading.Event()

    def hook(target: str, op: str, offset: int, length: int) -> None:
        if op == "write" and target == os.path.realpath(path):
            assert gate.wait(DEADLINE)

    with fileio.faults(hook):
        try:
            yield gate
        finally:
            gate.set()


def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():     # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_read_of_the_range_in_flight_waits_for_its_data(tmp_path: Path) -> None:
    img = _image(tmp_path)
    data = _batch(0x5A)
    with _writes_held(img.path) as gate:
        inflight = img.write_begin(0, data)
        assert inflight is not None
        writer = threading.Thread(target=inflight.run)
        writer.start()
        # elsewhere: neither a read nor an allocation query waits for the held write
        assert img.read(8 * MiB, 4096) == b"\x11" * 4096
        assert img.block_status(0, 2 * MiB)[0].state == "data"
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(img.read(MiB - 512, 1024)))
        reader.start()

        def reader_waits() -> bool:
            # the reader holds the image's lock while it waits for the data
            if img.lock.acquire(blocking=False):
                img.lock.release()
                return False
            return True

        _until(reader_waits, "the read of the range in flight never waited")
        assert not got
        gate.set()
        reader.join(DEADLINE)
        writer.join(DEADLINE)
    assert got == [b"\x5a" * 1024]
    img.flush()
    img.end_write_back()
    img.close()
    check(img.path)
    assert open_image(img.path).read(0, 2 * MiB) == bytes(data)


def test_a_failed_data_write_takes_back_its_request_only(tmp_path: Path) -> None:
    img = _image(tmp_path)
    img.write(16 * MiB, _batch(0x22))           # an earlier request, still unpublished
    failing = 4 * MiB

    def hook(target: str, op: str, offset: int, length: int) -> None:
        if op == "write" and target == os.path.realpath(img.path) and length >= MiB:
            raise OSError(errno.ENOSPC, "No space left on device")

    inflight = img.write_begin(failing, _batch(0x33))
    assert inflight is not None
    with fileio.faults(hook), pytest.raises(Exception) as caught:
        inflight.run()
    assert getattr(caught.value, "errno", None) == errno.ENOSPC
    assert img.read(failing, 2 * MiB) == bytes(2 * MiB)
    assert img.block_status(failing, 2 * MiB)[0].state == "unallocated"
    assert img.read(16 * MiB, 4096) == b"\x22" * 4096
    img.flush()
    img.end_write_back()
    img.close()
    check(img.path)
    reopened = open_image(img.path)
    assert reopened.read(16 * MiB, 2 * MiB) == b"\x22" * (2 * MiB)
    assert reopened.block_status(failing, 2 * MiB)[0].state == "unallocated"


def test_outside_write_back_the_write_is_done_at_once(tmp_path: Path) -> None:
    img = _image(tmp_path)
    img.end_write_back()
    assert img.write_begin(0, _batch(0x44)) is None
    assert img.inflight is None
    img.close()
    check(img.path)
    assert open_image(img.path).read(0, 4096) == b"\x44" * 4096

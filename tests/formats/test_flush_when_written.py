"""A flush reaches the disk only when something was written since the last one.

QEMU counts writes and flushes per node: closing or flushing an image that was only
read costs no ``fdatasync`` (a ``blockdev-del`` of an unwritten node is immediate),
while anything written — data, metadata, a resize — is synced before the flush
returns, and a failed sync is tried again by the next flush.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

import pytest

from engine.formats import fileio, open_image
from engine.formats.errors import ImageIOError
from tests.support.qemu import create, qemu_io


class SyncCount:
    """A fault hook that fails nothing and counts the syncs of one file."""

    def __init__(self, path: Path, fail: int = 0) -> None:
        self.path = str(path)
        self.syncs = 0
        self.fail = fail

    def __call__(self, path: str, op: str, offset: int, length: int) -> None:
        if op == "flush" and path == self.path:
            self.syncs += 1
            if self.fail:
                self.fail -= 1
                raise OSError(errno.EIO, "Input/output error")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = create(tmp_path / "a.qcow2", "4M")
    qemu_io(path, "write -P 0x11 0 64k")
    return path


def test_an_image_only_read_closes_without_a_sync(image: Path) -> None:
    count = SyncCount(image)
    with fileio.faults(count):
        img = open_image(image, writable=True)
        assert img.read(0, 4096) == b"\x11" * 4096
        img.flush()
        img.close()
    assert count.syncs == 0


def test_every_write_is_synced_by_the_next_flush(image: Path) -> None:
    count = SyncCount(image)
    with fileio.faults(count):
        img = open_image(image, writable=True)
        img.write(1 << 20, b"\x22" * 65536)      # a new cluster: data and metadata
        img.flush()
        assert count.syncs >= 1
        synced = count.syncs
        img.flush()                               # nothing new since
        assert count.syncs == synced
        img.write(0, b"\x33" * 512)              # an allocated cluster: data only
        img.close()
    assert count.syncs > synced


def test_a_failed_sync_is_tried_again_by_the_next_flush(image: Path) -> None:
    count = SyncCount(image, fail=1)
    with fileio.faults(count):
        img = open_image(image, writable=True)
        with pytest.raises(ImageIOError):
            img.write(0, b"\x44" * 512)
            img.flush()
        failed = count.syncs
        with contextlib.suppress(ImageIOError):    # the loss is reported again
            img.close()
    assert count.syncs > failed

"""Shared fixtures: real QEMU tools and a qemu-storage-daemon per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.qemu import QemuStorageDaemon
from tests.support.written_images import engine_written_images_are_sound  # noqa: F401  (autouse)

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def qsd(tmp_path: Path) -> Iterator[QemuStorageDaemon]:
    """A running qemu-storage-daemon whose monitor is connected and negotiated."""
    daemon = QemuStorageDaemon(tmp_path / "qsd")
    (tmp_path / "qsd").mkdir()
    with daemon:
        yield daemon

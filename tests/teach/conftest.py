"""Fixtures for tours and replays: an asyncio loop inside Qt's, a daemon address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import qtloop
from tests.support.qemu import QemuStorageDaemon


@pytest.fixture
def qloop(qapp):  # type: ignore[no-untyped-def]
    """The run's one qasync loop as the current asyncio loop, for this test only.

    Qt's event loop runs asyncio too: tests drive it with ``qtbot.waitUntil``.
    """
    loop = qtloop.shared_loop(qapp)
    qtloop.activate(loop)
    try:
        yield loop
    finally:
        qtloop.deactivate(loop)


@pytest.fixture
def qsd_address(qsd: QemuStorageDaemon) -> Iterator[str]:
    """The ``qsd`` fixture's monitor socket, freed for a session to connect to.

    A qemu-storage-daemon monitor serves one client at a time; the fixture's own
    synchronous client lets go so the code under test can connect.
    """
    assert qsd.qmp is not None
    qsd.qmp.close()
    qsd.qmp = None
    yield f"unix:{qsd.socket_path}"

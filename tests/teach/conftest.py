"""Fixtures for tours and replays: an asyncio loop inside Qt's, a daemon address."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.support.qemu import QemuStorageDaemon


@pytest.fixture(scope="session")
def _qasync_loop(qapp):  # type: ignore[no-untyped-def]
    """One qasync loop for the whole run (a second loop on one QApplication stalls)."""
    os.environ.setdefault("QT_API", "pyside6")
    import PySide6  # noqa: F401  - qasync must see PySide6 first
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)
    yield loop
    asyncio.events._set_running_loop(loop)
    loop.stop()
    loop.close()


@pytest.fixture
def qloop(_qasync_loop):  # type: ignore[no-untyped-def]
    """The qasync loop as the current asyncio loop, for this test only.

    Qt's event loop runs asyncio too: tests drive it with ``qtbot.waitUntil``. It is
    unset afterwards so that other tests' synchronous QMP clients get loops of their own.
    """
    # qasync marks an already-running loop as the thread's running loop; undo that
    # between tests, or every later asyncio.get_event_loop() would return it.
    asyncio.events._set_running_loop(_qasync_loop)
    asyncio.set_event_loop(_qasync_loop)
    try:
        yield _qasync_loop
    finally:
        for task in asyncio.all_tasks(_qasync_loop):
            task.cancel()
        asyncio.set_event_loop(None)
        asyncio.events._set_running_loop(None)


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

"""One qasync event loop per test run, shared by every GUI test that needs asyncio.

A second ``qasync.QEventLoop`` on the same QApplication stalls, so GUI fixtures should
all get their loop here. :func:`shared_loop` returns the loop already created — by this
helper, or any qasync loop left as the thread's running loop by another fixture — or
creates it. qasync marks an ``already_running`` loop as the thread's running loop;
:func:`activate` and :func:`deactivate` set and clear that around each test, so
synchronous QMP clients in other tests (which ask asyncio for a loop) are unaffected.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

_LOOPS: list[Any] = []


def shared_loop(qapp: Any) -> asyncio.AbstractEventLoop:
    os.environ.setdefault("QT_API", "pyside6")
    import PySide6  # noqa: F401  - qasync must see PySide6 first
    import qasync

    if not _LOOPS:
        running = asyncio.events._get_running_loop()
        if isinstance(running, qasync.QEventLoop):
            _LOOPS.append(running)
        else:
            _LOOPS.append(qasync.QEventLoop(qapp, already_running=True))
            asyncio.events._set_running_loop(None)
    return _LOOPS[0]


def activate(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.events._set_running_loop(loop)
    asyncio.set_event_loop(loop)


def deactivate(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
    asyncio.set_event_loop(None)
    asyncio.events._set_running_loop(None)

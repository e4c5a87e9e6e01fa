"""Modal dialogs from inside asyncio tasks, on qasync's loop.

``dialog.exec()`` runs a nested Qt event loop, and qasync runs asyncio's callbacks
from Qt's loop — so while the dialog is open, other tasks (the session's poll, job
events) are stepped from *inside* the task that opened it. asyncio refuses that
("Cannot enter into task … while another task is being executed") and the refused
task is never stepped again. :func:`nested_event_loop` steps out of the current task
for the dialog's lifetime and back in afterwards, exactly as if the task had awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def nested_event_loop() -> Iterator[None]:
    """Let other asyncio tasks run while a nested Qt event loop (a modal dialog) runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        yield
        return
    task = asyncio.current_task(loop)
    if task is None:
        yield
        return
    # asyncio has no public API for this; these are what Task.__step itself calls.
    asyncio.tasks._leave_task(loop, task)
    try:
        yield
    finally:
        asyncio.tasks._enter_task(loop, task)

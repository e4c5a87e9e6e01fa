"""The thread that runs engine commands for the QMP server.

Commands that may take long (they open or create files, walk a large graph, or carry
a huge argument) run here, one at a time and in the order they were handed over, so
the event loop stays free to read, answer and write for every other client. The
engine serialises commands with its own lock anyway; one thread is enough, and it
is a daemon thread so that a server told to stop never waits for it to go idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


class CommandWorker:
    """Run ``job(argument)`` off the loop; ``done(result)`` is then called on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str = "blockgraph-qmp-worker"
                 ) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[Any], Any], argument: Any,
               done: Callable[[Any], None]) -> None:
        """Queue a job; ``done`` gets its result, or the exception it raised."""
        self._queue.put((job, argument, done))

    def stop(self) -> None:
        """Let the thread end after the job it is running (does not wait for it)."""
        self._queue.put(_STOP)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, argument, done = item
            try:
                result = job(argument)
            except BaseException as exc:  # handed to the loop, which reports it
                result = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                self._loop.call_soon_threadsafe(done, result)

"""Qt face of a :class:`gui.session.Session`: its callbacks as Qt signals, and tasks.

It lives with the window, not in :mod:`gui.session`, because the session is asyncio and
Qt-free; under qasync its callbacks already run on the Qt thread, so the bridge just
re-emits them as signals the widgets connect to. It also owns every coroutine the GUI
starts (:meth:`SessionBridge.spawn` keeps strong references — qasync's loop holds only
weak ones — and reports failures through :attr:`SessionBridge.failed` instead of losing
them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.session import Session

log = logging.getLogger(__name__)


class SessionBridge(QObject):
    graphChanged = Signal(object)
    jobProgress = Signal(object)
    connectionState = Signal(object)
    traffic = Signal(object)  # TrafficEntry
    qmpEvent = Signal(object)  # raw QMP event dict (not `event`: QObject.event is Qt's)
    failed = Signal(str, object)  # what was being done, the exception
    busyChanged = Signal(bool)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = [
            session.on_graph_changed(self.graphChanged.emit),
            session.on_job_progress(self.jobProgress.emit),
            session.on_connection_state(self.connectionState.emit),
            session.on_traffic(self.traffic.emit),
            session.on_event(self.qmpEvent.emit),
        ]

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop; failures are emitted as ``failed(what, exc)``."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        self.busyChanged.emit(True)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            self.busyChanged.emit(bool(self._tasks))
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                log.info("%s failed: %s", what, exc)
                self.failed.emit(what, exc)

        task.add_done_callback(done)
        return task

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def detach(self) -> None:
        """Stop relaying (the session is being replaced)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

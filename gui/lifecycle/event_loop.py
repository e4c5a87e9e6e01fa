"""A window's process on qasync's Qt event loop, from its first paint to its last await.

    return run_window(app, window, start=lambda: window.spawn(...), finish=window.close_async,
                      abandon=window.drop_everything)

The loop must outlive the window: closing it only starts the shutdown, and what the
window holds open (sessions, connections) is closed on the loop before the loop stops.
(With Qt quitting on the last window, a close while a session was busy ended in "Event
loop stopped before Future completed" and exit status 1.) When Qt ends its loop by
itself — the X server went away, as when Ctrl+C reaches both xvfb-run's server and the
program — nothing can be awaited any more: ``abandon`` runs instead of ``finish``,
synchronously, and the process ends without tearing down what Qt already dropped. The
same happens when Xlib, which shares Qt's X connection, sees the server gone first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

import qasync
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QWidget

from gui.lifecycle.shutdown import end_without_teardown
from gui.lifecycle.signals import close_on_signals
from gui.lifecycle.x_connection import on_x_connection_lost


def run_window(app: QApplication, window: QWidget, *, start: Callable[[], object],
               finish: Callable[[], Awaitable[object]], abandon: Callable[[], None],
               signal_parent: QObject | None = None) -> int:
    """Show ``window``, call ``start()`` on the running loop, and return 0 once it closed
    and ``finish()`` completed (see the module)."""
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.setQuitOnLastWindowClosed(False)
    app.lastWindowClosed.connect(closed.set)
    quitting = False

    def qt_quitting() -> None:
        nonlocal quitting
        if not quitting:
            quitting = True
            abandon()
        closed.set()

    def x_gone() -> NoReturn:   # Xlib saw it first (see gui.lifecycle.x_connection)
        nonlocal quitting
        if not quitting:
            quitting = True
            abandon()
        end_without_teardown(0)

    app.aboutToQuit.connect(qt_quitting)
    if app.platformName() == "xcb":
        on_x_connection_lost(x_gone)
    window.show()
    close_on_signals(window.close, signal_parent or window)

    async def run() -> None:
        start()
        await closed.wait()
        if not quitting:
            await finish()

    with loop:
        try:
            loop.run_until_complete(run())
        except RuntimeError:
            if not quitting:
                raise
            # the loop stopped with Qt's before run() saw the event: expected here
        if quitting:   # before the loop is closed: nothing of it is torn down
            end_without_teardown(0)
    return 0

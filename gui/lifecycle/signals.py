"""Ctrl+C and SIGTERM close the editor like its window's close button.

Without this, Ctrl+C in the terminal did nothing (Qt's loop holds the process and
Python's default handler only raises inside Python code) and SIGTERM ended the
process on the spot, so the window geometry, theme and other settings of that run
were never saved.

Every other top-level window closes too (a tour or offline window the editor opened):
the process ends when its last window has closed, so one left open kept it alive and
a SIGTERM seemed ignored.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget


def close_everything(close: Callable[[], object]) -> None:
    """Close every other visible top-level window, then call ``close`` (the main one's)."""
    owner = getattr(close, "__self__", None)
    main = owner if isinstance(owner, QWidget) else None
    for widget in QApplication.topLevelWidgets():
        if widget is not main and widget.isWindow() and widget.isVisible():
            widget.close()
    close()


def close_on_signals(close: Callable[[], object], parent: QObject) -> QTimer:
    """Call ``close`` on Qt's loop when SIGINT or SIGTERM arrives.

    Python runs signal handlers only between bytecodes; the returned timer (kept
    alive by ``parent``) wakes the interpreter a few times a second so that it does.
    """

    quitting = False

    def on_signal(_signum: int, _frame: object) -> None:
        # once Qt is leaving its loop the window is closing anyway: a signal then must
        # not reach Qt objects that are being torn down
        if quitting or QCoreApplication.instance() is None or QCoreApplication.closingDown():
            return
        QTimer.singleShot(0, lambda: close_everything(close))

    def on_quit() -> None:
        nonlocal quitting
        quitting = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(on_quit)
    timer = QTimer(parent)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer

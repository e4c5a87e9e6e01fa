"""Ctrl+C and SIGTERM close the editor like its window's close button.

Without this, Ctrl+C in the terminal did nothing (Qt's loop holds the process and
Python's default handler only raises inside Python code) and SIGTERM ended the
process on the spot, so the window geometry, theme and other settings of that run
were never saved.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


def close_on_signals(close: Callable[[], object], parent: QObject) -> QTimer:
    """Call ``close`` on Qt's loop when SIGINT or SIGTERM arrives.

    Python runs signal handlers only between bytecodes; the returned timer (kept
    alive by ``parent``) wakes the interpreter a few times a second so that it does.
    """

    def on_signal(_signum: int, _frame: object) -> None:
        QTimer.singleShot(0, close)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    timer = QTimer(parent)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer

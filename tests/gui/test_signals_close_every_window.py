"""SIGTERM (and Ctrl+C) close every window the editor opened, not only the editor's.

With a tour window open, the editor's window closed on SIGTERM but the tour window
stayed, so the process (which ends with its last window) went on as if the signal had
been ignored. Here the real editor opens a tour window from Help → Tours…, a SIGTERM
arrives, and both windows close.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from gui.lifecycle.signals import close_on_signals
from gui.window.main_window import MainWindow
from tests.gui.conftest import run

pytestmark = pytest.mark.gui


@pytest.fixture
def own_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_closes_the_editor_and_the_tour_window_it_opened(
        qtbot: Any, aloop: Any, window: MainWindow, own_handlers: None, signum: int) -> None:
    close_on_signals(window.close, window)
    window.teaching_actions["tours"].trigger()
    (tour,) = window.teaching_windows
    try:
        qtbot.waitUntil(lambda: tour.isVisible() and tour.panel.runner is not None
                        and not tour.panel.busy, timeout=20000)
        signal.raise_signal(signum)
        qtbot.waitUntil(lambda: not window.isVisible() and not tour.isVisible(),
                        timeout=10000)
    finally:
        tour.close()
        run(qtbot, aloop, window.close_teaching())
    assert tour.panel.runner is None

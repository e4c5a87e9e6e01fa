"""A modal dialog opened from inside an asyncio task (an edit's confirmation or plan
preview, an error while connecting or opening images at start-up) runs a nested Qt
event loop. Other tasks — the session's poll, job events — must keep running while
it is open and afterwards; before, asyncio refused to step them ("Cannot enter into
task … while another task is being executed") and they were silently lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox, QWidget

from gui.widgets.dialogs import DialogPrompter


def _close_modal_later(delay_ms: int, record: list[str]) -> None:
    def close() -> None:
        modal = QApplication.activeModalWidget()
        if modal is None:
            QTimer.singleShot(20, close)
            return
        record.append(type(modal).__name__)
        if isinstance(modal, QMessageBox):
            modal.done(int(QMessageBox.StandardButton.Yes))
        elif isinstance(modal, QDialog):
            modal.reject()

    QTimer.singleShot(delay_ms, close)


@pytest.mark.parametrize("ask", ["error", "confirm"])
def test_other_tasks_run_while_a_task_shows_a_modal_dialog(
        qtbot: Any, aloop: asyncio.AbstractEventLoop, ask: str) -> None:
    parent = QWidget()
    prompter = DialogPrompter(parent)
    problems: list[dict[str, Any]] = []
    previous_handler = aloop.get_exception_handler()
    aloop.set_exception_handler(lambda _loop, context: problems.append(context))
    ticks: list[int] = []
    closed: list[str] = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    async def asks() -> int:
        await asyncio.sleep(0.05)
        before = len(ticks)
        _close_modal_later(300, closed)
        getattr(prompter, ask)("Question", "text")
        return len(ticks) - before

    tick_task = aloop.create_task(ticker())
    ask_task = aloop.create_task(asks())
    try:
        qtbot.waitUntil(ask_task.done, timeout=10000)
        during = ask_task.result()
        after = len(ticks)
        qtbot.wait(200)
        assert closed, "no modal dialog was shown"
        assert problems == []
        assert during > 3, "the other task did not run while the dialog was open"
        assert len(ticks) > after + 3, "the other task stopped after the dialog"
    finally:
        tick_task.cancel()
        qtbot.wait(20)
        aloop.set_exception_handler(previous_handler)
        parent.deleteLater()

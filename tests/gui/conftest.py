"""GUI test fixtures: the real main window on a qasync loop, with scripted answers.

The window runs on the offscreen platform; asyncio runs on a ``qasync.QEventLoop``
created ``already_running`` so that pytest-qt's ``waitUntil`` (which spins Qt's
event loop) also drives the session's coroutines.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync  # after PySide6
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.planner.plan import Plan
from gui.widgets.dialogs import JobChoice, Prompter
from gui.widgets.media_dialog import MediumChoice
from gui.widgets.plan_review import Review
from gui.window.main_window import MainWindow
from tests.support.peer import PEER_KINDS, Peer, started_peer


class ScriptedPrompter(Prompter):
    """Answers questions without dialogs; records what was asked.

    A review that must be confirmed (``Review.needs_confirmation``) is recorded as a
    ``("confirm", text)`` question and answered with ``confirm_answer``; every review is
    kept in ``reviews`` (its plan in ``previews``).
    """

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str]] = []
        self.previews: list[Plan] = []
        self.reviews: list[Review] = []
        self.confirm_answer = True
        self.text_answer: str | None = None  # None: accept the suggestion
        self.choice: str | None = None  # None: accept the default
        self.speed = 0  # the job dialogs' speed limit
        self.file: str | None = None
        self.medium: MediumChoice | None = None

    def confirm(self, title: str, text: str) -> bool:
        self.asked.append(("confirm", text))
        return self.confirm_answer

    def review(self, review: Review) -> bool:
        self.reviews.append(review)
        self.previews.append(review.plan)
        if review.needs_confirmation:
            self.asked.append(("confirm", review.text()))
            return self.confirm_answer
        return True

    def choose_job(self, title: str, label: str, options: list[str], default: int = 0
                   ) -> JobChoice | None:
        choice = self.choose(title, label, options, default)
        return None if choice is None else JobChoice(choice, self.speed)

    def save_file(self, title: str, suggested: str, filters: str) -> str | None:
        self.asked.append(("save", suggested))
        return self.file

    def ask_medium(self, drive: str, current: str | None) -> MediumChoice | None:
        self.asked.append(("medium", drive))
        return self.medium

    def ask_text(self, title: str, label: str, default: str) -> str | None:
        self.asked.append(("text", default))
        return self.text_answer or default

    def choose(self, title: str, label: str, options: list[str], default: int = 0
               ) -> str | None:
        self.asked.append(("choose", "|".join(options)))
        return self.choice if self.choice is not None else options[default]

    def open_file(self, title: str, directory: str = "", filters: str = "") -> str | None:
        return self.file

    def error(self, title: str, text: str) -> None:
        self.errors.append((title, text))


_LOOP: list[asyncio.AbstractEventLoop] = []
_OTHER_HOOKS: list[object] = []
_EXECUTOR: dict[str, qasync.QThreadExecutor] = {}


def _join_executor() -> None:
    if "threads" in _EXECUTOR:
        _EXECUTOR.pop("threads").shutdown(wait=True)


@pytest.fixture(scope="session", autouse=True)
def _join_loop_threads() -> Iterator[None]:
    yield
    _join_executor()


@pytest.fixture
def aloop(qapp: QApplication, pytestconfig: pytest.Config) -> Iterator[asyncio.AbstractEventLoop]:
    """One qasync loop for every GUI test (a second loop on one QApplication stalls).

    It counts as the running loop only while a GUI test runs: other tests in the same
    process use their own loops (asyncio.run, pytest-asyncio).
    """
    if not _LOOP:
        _OTHER_HOOKS.append(sys.get_asyncgen_hooks())
        _LOOP.append(qasync.QEventLoop(qapp, already_running=True))
        # its threads (asyncio.to_thread: image maps, probes) are joined at the end of
        # the session, as closing the loop would; a QThread left running aborts Python
        _LOOP[0].set_default_executor(_EXECUTOR.setdefault("threads", qasync.QThreadExecutor()))
        # also when only modules outside tests/gui use the loop (their session has no
        # _join_loop_threads): a QThread still running when Python exits aborts it (134)
        pytestconfig.add_cleanup(_join_executor)
    loop = _LOOP[0]
    asyncio.events._set_running_loop(loop)
    sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
                           finalizer=loop._asyncgen_finalizer_hook)  # type: ignore[attr-defined]
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    asyncio.events._set_running_loop(None)
    sys.set_asyncgen_hooks(*_OTHER_HOOKS[0])  # type: ignore[misc]


@pytest.fixture
def window(qtbot: Any, aloop: Any, tmp_path: Path) -> Iterator[MainWindow]:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    prompter = ScriptedPrompter()
    win = MainWindow(settings, prompter=prompter, scheme="light")
    win.resize(1400, 900)
    win.show()
    yield win
    task = aloop.create_task(win.close_session())
    qtbot.waitUntil(task.done, timeout=10000)
    win.close()
    win.deleteLater()
    qtbot.wait(10)
    # Collect now: finalizers of Qt/asyncio objects must not run at a random later
    # point (Python 3.11 miscounts recursion if one runs inside the compiler).
    import gc
    gc.collect()


@pytest.fixture(params=PEER_KINDS)
def gui_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peer]:
    with started_peer(request.param, tmp_path) as peer:
        yield peer


def run(qtbot: Any, loop: asyncio.AbstractEventLoop, coro: Any, timeout: int = 20000) -> Any:
    """Run ``coro`` on the qasync loop while Qt processes events; return its result."""
    task = loop.create_task(coro)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()

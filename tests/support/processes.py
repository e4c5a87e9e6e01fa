"""Watching other processes from a test: what they hold open, and waiting for a
condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def session_pids(session: int) -> list[int]:
    """The processes of session ``session`` (started with ``start_new_session=True``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) == session:
                pids.append(int(entry))
        except OSError:   # gone meanwhile
            continue
    return pids


def open_files(pids: list[int]) -> set[str]:
    """The paths that the processes ``pids`` hold open."""
    paths: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:   # the process or a descriptor went away meanwhile
            continue
    return paths


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = 60,
               alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds,
    or as soon as ``alive()`` says the process being watched has gone."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert alive(), f"the process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)

"""Time for jobs and throttle groups, injectable so rate limits and timestamps are testable.

Jobs need three things from time: a monotonic reading for the rate limiter, a
wall-clock reading for QMP event timestamps, and a way to wait that a command
(pause, cancel, set-speed) can cut short. ``RealClock`` uses the host;
``ManualClock`` only moves when a test advances it, so a rate-limited job can be
stepped deterministically. Throttle groups use the same two: a monotonic reading
for their leaky buckets and a wait that a request's release cuts short.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    def wait(self, cond: threading.Condition, seconds: float | None) -> None:
        """Wait on ``cond`` (held by the caller) for at most ``seconds`` (None: until notified)."""
        ...


class RealClock:
    """The host's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, cond: threading.Condition, seconds: float | None) -> None:
        cond.wait(seconds)


class ManualClock:
    """A clock that stands still until ``advance`` is called; waits never block on time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def wait(self, cond: threading.Condition, seconds: float | None) -> None:
        if seconds is None:
            cond.wait()
        else:
            # Time passes only when the test says so; let other threads run briefly.
            cond.wait(0.001)


def timestamp(seconds: float) -> dict[str, int]:
    """A QMP event timestamp: whole seconds and microseconds."""
    whole = int(seconds)
    return {"seconds": whole, "microseconds": round((seconds - whole) * 1_000_000) % 1_000_000}

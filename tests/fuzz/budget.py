"""How long the fuzz targets run, and the per-example hang guard.

``BLOCKGRAPH_FUZZ`` selects a hypothesis profile: ``short`` (the default, what CI
runs: every fuzz test together well under 90 s on two cores) or ``long`` (many
more examples per test; ``scripts/fuzz`` uses the coverage-guided runner instead,
see :mod:`tests.fuzz.run`). ``BLOCKGRAPH_FUZZ_EXAMPLES`` overrides the number of
examples for one run.

Hangs are failures: :func:`time_limit` arms a real-time timer around one example
and raises :class:`Hang` when it fires. It saves and restores any timer already
armed (pytest-timeout uses the same signal), so both keep working.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
import time
import types
from collections.abc import Iterator

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("BLOCKGRAPH_FUZZ", "short")

_EXAMPLES = {"short": 1.0, "long": 50.0}

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large,
             HealthCheck.function_scoped_fixture]


def fuzz_settings(short_examples: int) -> settings:
    """Settings for one fuzz test: ``short_examples`` in CI, scaled up for ``long``."""
    override = os.environ.get("BLOCKGRAPH_FUZZ_EXAMPLES")
    n = int(override) if override else max(1, int(short_examples * _EXAMPLES.get(PROFILE, 1.0)))
    return settings(max_examples=n, deadline=None, suppress_health_check=_SUPPRESS,
                    derandomize=PROFILE == "short", print_blob=True, database=None)


class Hang(Exception):
    """An example ran longer than its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "example") -> Iterator[None]:
    """Raise :class:`Hang` in the main thread if the block runs over ``seconds``."""
    handler = signal.getsignal(signal.SIGALRM)
    if not isinstance(handler, (int, types.FunctionType)):
        # a handler from an extension (libFuzzer's, via atheris) owns SIGALRM and cannot
        # be nested safely: watch from a thread instead
        with _watchdog(seconds, what):
            yield
        return

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"{what} ran longer than {seconds:g} s")

    old_handler = signal.signal(signal.SIGALRM, fire)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            left = max(old_delay - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


@contextlib.contextmanager
def _watchdog(seconds: float, what: str) -> Iterator[None]:
    """Interrupt the main thread (KeyboardInterrupt, turned into Hang) after ``seconds``."""
    done = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            fired.set()
            _thread.interrupt_main()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            raise Hang(f"{what} ran longer than {seconds:g} s") from None
        raise
    finally:
        done.set()
        t.join()

"""When Qt ends its loop by itself: what the windows do instead of an orderly close.

Qt leaves its event loop on its own when the X server goes away — as when the
virtual screen under the window is killed. The asyncio loop inside Qt's (qasync)
stops with it, so nothing can be awaited any more: each window saves and releases
what it must synchronously (settings, the bundled engine's images, a tour's scratch
files), and then the process ends at once with :func:`end_without_teardown`.

Why not return and let Python exit: the interpreter's teardown would then finalize
what is left — the QMP client's and the session's pending coroutines, qasync's
notifiers and timers, wrappers of Qt objects whose C++ side went with the display —
in whatever order the garbage collector meets them, after Qt's application is gone.
That crashed now and then (a segmentation fault while collecting a pending
``asyncio.Queue.get``), and otherwise only printed errors about a loop that is gone.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def end_without_teardown(status: int) -> NoReturn:
    """Flush what was printed and end the process with ``status``, skipping the
    interpreter's teardown (everything that must be kept was saved before this)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):   # closed or broken: nothing to do
            stream.flush()
    os._exit(status)

"""When Qt ends its loop by itself: what the windows do instead of an orderly close.

Qt leaves its event loop on its own when the X server goes away — as when Ctrl+C in
a terminal reaches both ``xvfb-run``'s server and the program. The asyncio loop
inside Qt's (qasync) stops with it, so nothing can be awaited any more: each window
saves and releases what it must synchronously (settings, the bundled engine's
images, a tour's scratch files), and the coroutines left pending — the QMP
client's, the session's — are dropped. Their teardown at exit would only print
errors about a loop that is gone; :func:`drop_pending_async_work` silences exactly
that, and only then.
"""

from __future__ import annotations

import asyncio
import sys
import warnings


def drop_pending_async_work(loop: asyncio.AbstractEventLoop) -> None:
    """Let the tasks and coroutines still pending on ``loop`` go without reports."""
    loop.set_exception_handler(lambda _loop, _context: None)
    sys.unraisablehook = lambda _unraisable: None
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                            category=RuntimeWarning)

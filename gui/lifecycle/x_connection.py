"""When Xlib, not Qt, is the first to see the X server gone.

Qt's xcb platform shares its display connection with Xlib. When the X server goes
away, whichever of the two reads the broken connection first decides what happens:
Qt leaves its event loop (and the window ends as :mod:`gui.lifecycle.shutdown` says),
but Xlib's default I/O error handler prints "X connection to :N broken" and calls
``exit(1)`` on the spot — no settings saved, a tour's scratch files left behind. Which
one wins is a race, decided by what the window was drawing at that moment.

:func:`on_x_connection_lost` puts a handler of ours in Xlib's place. Xlib's contract is
that this handler never returns (if it does, Xlib exits anyway), so it runs the
window's synchronous ``abandon`` and ends the process itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import NoReturn

#: Xlib's ``XIOErrorHandler``: ``int (*)(Display *)``
_HANDLER_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)

#: the installed handler, kept alive as long as Xlib may call it
_installed: list[object] = []


def _xlib() -> ctypes.CDLL | None:
    """The process's libX11, or None where there is none (Wayland, offscreen, macOS)."""
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def on_x_connection_lost(end: Callable[[], NoReturn]) -> bool:
    """Have Xlib call ``end`` (which must end the process) instead of its own
    print-and-exit when the X connection breaks. Returns whether Xlib is there."""
    xlib = _xlib()
    if xlib is None:
        return False

    def handler(_display: int | None) -> int:
        end()

    callback = _HANDLER_TYPE(handler)
    xlib.XSetIOErrorHandler.restype = ctypes.c_void_p
    xlib.XSetIOErrorHandler.argtypes = [_HANDLER_TYPE]
    xlib.XSetIOErrorHandler(callback)
    _installed[:] = [callback]
    return True

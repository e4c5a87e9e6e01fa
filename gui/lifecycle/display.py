"""Is there a screen to open a window on?

Without one, Qt's xcb plugin cannot start and Qt *aborts the process* (a core dump
after a page of plugin messages). The window-opening entry points ask first and exit
with one line saying what to do instead.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping

HINT = ("run it on a virtual screen with 'scripts/run' or 'xvfb-run -a blockgraph ...', "
        "or draw the graph to a file: 'blockgraph render --demo -o graph.png'")


def missing_display(env: Mapping[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """The reason no window can open here, or None when one can (or we cannot tell)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    if env.get("QT_QPA_PLATFORM") or env.get("WAYLAND_DISPLAY"):
        return None
    display = env.get("DISPLAY")
    if not display:
        return f"no display (DISPLAY and WAYLAND_DISPLAY are not set); {HINT}"
    local = re.fullmatch(r":(\d+)(?:\.\d+)?", display)
    if local and not _x_server_listens(int(local.group(1))):
        return f"no X server answers on DISPLAY={display}; {HINT}"
    return None


def _x_server_listens(number: int) -> bool:
    """Does a local X server accept connections for display ``:number``? (Its abstract
    socket or its socket file — a stale DISPLAY, left after an ssh session or an Xvfb
    that exited, names neither.)"""
    for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(2)
            sock.connect(address)
            return True
        except OSError:
            continue
        finally:
            sock.close()
    return False


def exit_status_without_display(program: str = "blockgraph") -> int | None:
    """Print why and return 1 when no window can open (and no QApplication exists yet)."""
    from PySide6.QtWidgets import QApplication  # lazily: missing_display() needs no Qt

    if QApplication.instance() is not None:
        return None
    reason = missing_display()
    if reason is None:
        return None
    print(f"{program}: {reason}", file=sys.stderr)
    return 1

"""``blockgraph --connect qemu:///system``: the VMs window on qasync's Qt event loop.

A libvirt URI without ``#DOMAIN`` names a whole connection: every domain of it is shown
at once (:mod:`gui.vms.window`); File → Connect to… adds more hosts and QMP sockets.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.lifecycle.display import exit_status_without_display
from gui.lifecycle.shutdown import end_without_teardown
from gui.lifecycle.signals import close_on_signals
from gui.vms.window import VmsWindow


def main(addresses: list[str], settings_path: Path | None = None) -> int:
    """Show the VMs of ``addresses`` until the window closes."""
    if (status := exit_status_without_display()) is not None:
        return status
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("blockgraph")
    app.setOrganizationName("blockgraph")
    settings = (QSettings(str(settings_path), QSettings.Format.IniFormat) if settings_path
                else QSettings())
    window = VmsWindow(settings)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.setQuitOnLastWindowClosed(False)
    app.lastWindowClosed.connect(closed.set)
    quitting = False

    def qt_quitting() -> None:
        # Qt ends its loop by itself (the X server went away): nothing can be awaited
        nonlocal quitting
        if not quitting:
            quitting = True
            window.save_settings()
        closed.set()

    app.aboutToQuit.connect(qt_quitting)
    window.show()
    # the signal timer belongs to the application: the window itself runs no timer
    close_on_signals(window.close, app)

    async def run() -> None:
        for address in addresses:
            window.spawn(window.open_address(address), f"connect to {address}")
        await closed.wait()
        if not quitting:
            await window.close_connections()

    with loop:
        try:
            loop.run_until_complete(run())
        except RuntimeError:
            if not quitting:
                raise
        if quitting:
            end_without_teardown(0)
    return 0

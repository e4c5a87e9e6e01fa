"""``blockgraph --connect qemu:///system``: the VMs window on qasync's Qt event loop.

A libvirt URI names a whole connection: every domain of it is shown at once
(:mod:`gui.vms.window`; ``URI#DOMAIN`` brings that domain into view); File → Connect
to… adds more hosts and QMP sockets.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.lifecycle.display import exit_status_without_display
from gui.lifecycle.event_loop import run_window
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

    def start() -> None:
        for address in addresses:
            window.spawn(window.open_address(address), f"connect to {address}")

    # the signal timer belongs to the application: the window itself runs no timer
    return run_window(app, window, start=start, finish=window.close_connections,
                      abandon=window.save_settings, signal_parent=app)

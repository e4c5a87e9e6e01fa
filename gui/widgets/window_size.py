"""A main window's size and docks as the user left them, or a first size that fits.

Saved as ``geometry`` and ``windowState`` in the window's ``QSettings``.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, QSize
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QMainWindow


def default_size(screen: QScreen | None) -> QSize:
    """The first run's window size: 1400x900, but never larger than 90% of the screen
    (on a 1280x800 laptop a 1400x900 window opened with its edges off-screen)."""
    want = QSize(1400, 900)
    if screen is None:
        return want
    room = screen.availableGeometry().size() * 0.9
    return want.boundedTo(room)


def restore_window(window: QMainWindow, settings: QSettings) -> None:
    """The saved geometry and dock state, or the first run's size."""
    geo = settings.value("geometry")
    if isinstance(geo, QByteArray | bytes) and geo:
        window.restoreGeometry(QByteArray(geo))
    else:
        window.resize(default_size(QGuiApplication.primaryScreen()))
    state = settings.value("windowState")
    if isinstance(state, QByteArray | bytes) and state:
        window.restoreState(QByteArray(state))

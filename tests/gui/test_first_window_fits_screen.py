"""The first run's window fits the screen it opens on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtGui import QGuiApplication

from gui.window.main_window import MainWindow


def test_first_window_fits_the_screen(qtbot: Any, aloop: Any, tmp_path: Path) -> None:
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    room = QGuiApplication.primaryScreen().availableGeometry()
    assert room.width() < 1400 or room.height() < 900  # the offscreen screen is small
    assert window.width() <= room.width() and window.height() <= room.height()
    assert window.width() >= room.width() * 0.8

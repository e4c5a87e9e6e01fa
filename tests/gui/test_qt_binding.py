"""The Qt binding must keep Python's reference counts intact.

PySide6-Essentials 6.12.0 on Python 3.11 releases a reference to ``None`` on every
call of a void Qt method; after a few thousand calls (one repaint of a large
graph) the interpreter aborts. pyproject.toml excludes it; this test catches any
binding with the same fault.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication, QGraphicsRectItem

pytestmark = pytest.mark.gui


def test_void_qt_calls_do_not_release_none(qapp: QApplication) -> None:
    img = QImage(16, 16, QImage.Format.Format_ARGB32)
    painter = QPainter(img)
    item = QGraphicsRectItem(0, 0, 1, 1)
    color = QColor("#123456")
    before = sys.getrefcount(None)
    for i in range(500):
        painter.setPen(color)
        item.setPos(i, i)
    after = sys.getrefcount(None)
    painter.end()
    # A sound binding leaves None's count alone (give or take a few temporaries).
    assert after - before > -50

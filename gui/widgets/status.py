"""Status bar labels that elide instead of pushing their neighbours or cutting text off.

A plain ``QLabel`` in a status bar asks for its whole text's width: a long QEMU error
pushed the connection state out of sight, and cutting the text at a fixed length lost
its end for good. :class:`ElidedLabel` shows what fits (an ellipsis in the middle),
keeps the whole text in its tooltip and in :meth:`full_text`, and asks for little room.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """A one-line label showing as much of its text as fits (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None, minimum: int = 60) -> None:
        super().__init__(parent)
        self._full = ""
        self._minimum = minimum
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text if text else "")
        super().setText(text)
        self.update()

    def full_text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        """What the label shows at its current width."""
        return self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle,
                                             max(0, self.contentsRect().width()))

    def minimumSizeHint(self) -> QSize:
        return QSize(self._minimum, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        width = self.fontMetrics().horizontalAdvance(self._full) + 8
        return QSize(max(self._minimum, width), super().sizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(),
                         int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                         self.shown_text())

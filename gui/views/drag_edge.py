"""The edge that follows the cursor while a backing link is dragged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from gui.views.levels import DRAG_Z
from gui.views.text import font

if TYPE_CHECKING:
    from gui.views.palette import Scheme


class DragEdgeItem(QGraphicsItem):
    """The edge that follows the cursor while a backing link is dragged.

    Coloured green when the drop would be accepted and red when refused, with the
    reason written beside the cursor (the same text the status bar shows).
    """

    def __init__(self, start: QPointF, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme
        self.start = start
        self.end = start
        self.ok: bool | None = None
        self.reason = ""
        self._bounds = QRectF()
        self.setZValue(DRAG_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._recompute()

    def set_end(self, end: QPointF, ok: bool | None, reason: str) -> None:
        self.prepareGeometryChange()
        self.end, self.ok, self.reason = end, ok, reason
        self._recompute()
        self.update()

    def _path(self) -> QPainterPath:
        a, b = self.start, self.end
        path = QPainterPath(a)
        dy = max(30.0, abs(b.y() - a.y()) / 2)
        path.cubicTo(QPointF(a.x(), a.y() + dy), QPointF(b.x(), b.y() - dy), b)
        return path

    def _recompute(self) -> None:
        r = self._path().boundingRect().adjusted(-12, -12, 12, 12)
        self._bounds = r.united(QRectF(self.end.x(), self.end.y(), 460, 60))

    def boundingRect(self) -> QRectF:
        return self._bounds

    def color(self) -> QColor:
        if self.ok is None:
            return self.scheme.color("edge_backing")
        return self.scheme.color("drag_ok" if self.ok else "drag_refused")

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        color = self.color()
        pen = QPen(color, 3.0)
        pen.setStyle(Qt.PenStyle.DashLine if self.ok is None else Qt.PenStyle.SolidLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._path())
        painter.setBrush(QBrush(color))
        painter.drawEllipse(self.end, 5, 5)
        if self.reason:
            f = font("body")
            fm = QFontMetricsF(f)
            text = self.reason if len(self.reason) < 90 else self.reason[:87] + "…"
            w = fm.horizontalAdvance(text) + 16
            rect = QRectF(self.end.x() + 14, self.end.y() + 10, w, 22)
            painter.setPen(QPen(color, 1.5))
            painter.setBrush(self.scheme.color("card"))
            painter.drawRoundedRect(rect, 5, 5)
            painter.setPen(self.scheme.color("text"))
            painter.setFont(f)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

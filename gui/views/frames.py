"""The VM frames: a labelled, lightly tinted box around the parts of the graph one
VM uses, drawn under everything else by one layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from gui.views.levels import FRAME_Z, LOW_DETAIL
from gui.views.text import font

if TYPE_CHECKING:
    from gui.views.layout import Frame
    from gui.views.palette import Scheme


_SCALED: dict[int, tuple[QFont, QFontMetricsF]] = {}


def _scaled_font(pixels: int) -> tuple[QFont, QFontMetricsF]:
    """The frame label's font at ``pixels`` scene units high (made once per size)."""
    found = _SCALED.get(pixels)
    if found is None:
        f = QFont(font("frame"))
        f.setPixelSize(max(1, pixels))
        found = _SCALED[pixels] = (f, QFontMetricsF(f))
    return found


class FrameLayer(QGraphicsItem):
    """Paints :class:`~gui.views.layout.Frame` boxes with their VM's name on top."""

    def __init__(self, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme
        self.frames: list[Frame] = []
        self._bounds = QRectF()
        self.setZValue(FRAME_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_frames(self, frames: list[Frame]) -> None:
        self.prepareGeometryChange()
        self.frames = list(frames)
        bounds = QRectF()
        for f in self.frames:
            bounds = bounds.united(QRectF(*f.rect))
        self._bounds = bounds.adjusted(-2, -2, 2, 2) if self.frames else QRectF()
        self.update()

    def set_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self.update()

    def frames_rect(self) -> QRectF:
        return QRectF(self._bounds)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        if not self.frames:
            return
        s = self.scheme
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        exposed = option.exposedRect
        painter.setPen(QPen(s.color("frame_border"), 1.2))
        painter.setBrush(s.color("frame"))
        visible = [f for f in self.frames if QRectF(*f.rect).intersects(exposed)]
        if lod < LOW_DETAIL:
            # a few pixels of rounding at this zoom: plain rectangles, in one call
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.drawRects([QRectF(*f.rect) for f in visible])
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        else:
            for f in visible:
                painter.drawRoundedRect(QRectF(*f.rect), 10, 10)
        painter.setPen(s.color("text_dim"))
        if lod >= LOW_DETAIL:
            painter.setFont(font("frame"))
            for f in visible:
                x, y, w, _h = f.rect
                painter.drawText(QRectF(x + 14, y + 4, w - 28, 24),
                                 Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                                 f.label)
            return
        # zoomed out: the VM's name stays about 9 pixels high on screen, as long as
        # it fits in its frame's label strip and the gap above the frame
        g_room = 95.0
        size = 9.0 / max(lod, 0.01)
        if size > g_room:
            return
        big, metrics = _scaled_font(int(size))
        painter.setFont(big)
        for f in visible:
            x, y, w, _h = f.rect
            text = metrics.elidedText(f.label, Qt.TextElideMode.ElideRight, w - 8)
            painter.drawText(QRectF(x + 4, y - size * 1.25 + 26, w - 8, size * 1.25),
                             Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft, text)

"""The minimap: the whole graph in a corner, with the visible part framed.

It draws a cached picture of the scene (re-rendered only when the scene changed,
at most a few times a second) and the main view's rectangle on top, so scrolling
a 5,000-node graph costs one pixmap blit. Click or drag in it to move the view.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from gui.views.canvas import GraphCanvas


class Minimap(QWidget):
    def __init__(self, view: GraphCanvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.scene = view.graph_scene
        self._pixmap: QPixmap | None = None
        self._source = QRectF()
        self._target = QRectF()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.rebuild)
        self.scene.changed.connect(self._scene_changed)
        view.viewportChanged.connect(self.update)
        self.setFixedSize(220, 150)
        self.setToolTip("Overview — click or drag to move the view")
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def _scene_changed(self, _regions: object) -> None:
        # redrawing the overview of a big graph costs tens of milliseconds: do it
        # rarely there, so a job's progress updates never make the editor stutter
        self._timer.setInterval(250 if len(self.scene.nodes) < 1000 else 1500)
        if not self._timer.isActive():
            self._timer.start()

    def rebuild(self) -> None:
        rect = self.scene.graph_rect()
        if rect.isEmpty():
            self._pixmap = None
            self.update()
            return
        w, h = self.width() - 8, self.height() - 8
        scale = min(w / rect.width(), h / rect.height())
        tw, th = rect.width() * scale, rect.height() * scale
        self._target = QRectF(4 + (w - tw) / 2, 4 + (h - th) / 2, tw, th)
        self._source = rect
        pm = QPixmap(self.size())
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        self.scene.render(p, self._target, rect)
        p.end()
        self._pixmap = pm
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        scheme = self.scene.scheme
        p.setPen(QPen(scheme.color("card_border"), 1))
        bg = scheme.color("window")
        bg.setAlpha(235)
        p.setBrush(bg)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        if self._pixmap is None:
            if self.scene.nodes:
                self._timer.start(0)
            p.end()
            return
        p.drawPixmap(0, 0, self._pixmap)
        visible = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        frame = self._to_map(visible).intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        color = QColor(scheme.selected)
        p.setPen(QPen(color, 1.5))
        color.setAlpha(40)
        p.setBrush(color)
        p.drawRect(frame)
        p.end()

    def _to_map(self, r: QRectF) -> QRectF:
        s = self._target.width() / self._source.width() if self._source.width() else 1.0
        return QRectF(self._target.x() + (r.x() - self._source.x()) * s,
                      self._target.y() + (r.y() - self._source.y()) * s,
                      r.width() * s, r.height() * s)

    def _to_scene(self, pt: QPointF) -> QPointF:
        s = self._target.width() / self._source.width() if self._source.width() else 1.0
        return QPointF(self._source.x() + (pt.x() - self._target.x()) / s,
                       self._source.y() + (pt.y() - self._target.y()) / s)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._pixmap is not None:
            self.view.centerOn(self._to_scene(event.position()))
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.mousePressEvent(event)

"""The editor's canvas: the graph view with the window's own marks painted over it.

:class:`EditorCanvas` is the views' canvas (zoom, pan, the backing drag) plus two things
only the editor needs: the marks of :class:`~gui.widgets.canvas_marks.CanvasMarks`
(job states, trays, staged edits as ghost links) painted in its foreground, and the
keyboard modifiers of the last mouse release, so that a drop made with Shift held is
staged instead of run (:mod:`gui.window.staging`).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QHelpEvent, QMouseEvent, QPainter
from PySide6.QtWidgets import QToolTip

from gui.views.canvas import GraphCanvas
from gui.views.scene import GraphScene
from gui.widgets.canvas_marks import CanvasMarks

#: held while a link is dropped, the drop is staged rather than run
STAGE_MODIFIER = Qt.KeyboardModifier.ShiftModifier


class EditorCanvas(GraphCanvas):
    """The graph view with marks (see the module docstring)."""

    def __init__(self, scene: GraphScene, marks: CanvasMarks) -> None:
        super().__init__(scene)
        self.marks = marks
        self.release_modifiers = Qt.KeyboardModifier.NoModifier
        marks.changed.connect(self.viewport().update)

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:
        super().drawForeground(painter, rect)
        self.marks.paint(painter, self.graph_scene.nodes)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self.release_modifiers = event.modifiers()
        super().mouseReleaseEvent(event)

    def staged_drop(self) -> bool:
        """Whether the last drop was made with the staging modifier held."""
        return bool(self.release_modifiers & STAGE_MODIFIER)

    def viewportEvent(self, event: object) -> bool:
        if isinstance(event, QHelpEvent):
            pos = self.mapToScene(event.pos())
            tip = self.marks.tooltip_at(self.graph_scene.nodes, pos.x(), pos.y())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self)
                return True
        return super().viewportEvent(event)  # type: ignore[arg-type]

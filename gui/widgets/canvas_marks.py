"""Marks over the canvas that the graph itself does not carry: job states, trays, staging.

The scene draws what a snapshot says. Some of what the editor must show is not in a
snapshot: a job that failed is gone from QEMU's graph a moment later (its red mark must
stay on the node it worked on until the user clears it), whether a job is paused or
ready is one word in its card, a drive's tray is read with ``query-block``, and staged
edits have not happened yet (ghost links: where a backing link will point once the
staged edits are applied). :class:`CanvasMarks` holds them and paints them over the
cards, in scene coordinates, from the cards' current places — the window's canvas calls
:meth:`CanvasMarks.paint` from its foreground.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen

#: where a mark sits on its card: on the top edge (left) or under the bottom edge
ABOVE, BELOW = "above", "below"


@dataclass(frozen=True, slots=True)
class Mark:
    """A pill of text on a card: ``color`` filled, white text."""

    text: str
    color: str
    where: str = BELOW
    tooltip: str = ""


@dataclass(frozen=True, slots=True)
class Ghost:
    """A staged link: ``parent``'s backing will be ``child`` (None: detached)."""

    parent: str
    child: str | None
    label: str = "staged"


_FONT: list[QFont] = []


def _font() -> QFont:
    if not _FONT:
        f = QFont()
        f.setPointSizeF(7.5)
        f.setBold(True)
        _FONT.append(f)
    return _FONT[0]


class CanvasMarks(QObject):
    """Marks by node and source, and ghost links (see the module docstring)."""

    #: something to draw changed: repaint the canvas
    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._marks: dict[str, dict[str, Mark]] = {}
        self.ghosts: tuple[Ghost, ...] = ()
        self.ghost_color = "#8a5cb8"

    # -- model --------------------------------------------------------------------------
    def set_mark(self, key: str, source: str, mark: Mark | None) -> None:
        """Put (or with None remove) the mark ``source`` puts on node ``key``."""
        marks = self._marks.setdefault(key, {})
        if mark is None:
            if marks.pop(source, None) is None:
                return
        elif marks.get(source) == mark:
            return
        else:
            marks[source] = mark
        if not marks:
            del self._marks[key]
        self.changed.emit()

    def clear_source(self, source_prefix: str) -> None:
        """Remove every mark whose source starts with ``source_prefix``."""
        hit = False
        for key in list(self._marks):
            marks = self._marks[key]
            for source in [s for s in marks if s.startswith(source_prefix)]:
                del marks[source]
                hit = True
            if not marks:
                del self._marks[key]
        if hit:
            self.changed.emit()

    def marks(self, key: str) -> list[Mark]:
        return list(self._marks.get(key, {}).values())

    def all_marks(self) -> Mapping[str, Mapping[str, Mark]]:
        return self._marks

    def set_ghosts(self, ghosts: tuple[Ghost, ...]) -> None:
        if ghosts != self.ghosts:
            self.ghosts = ghosts
            self.changed.emit()

    def tooltip_at(self, cards: Mapping[str, Any], x: float, y: float) -> str:
        """The tooltip of the mark under the scene point (x, y), if any."""
        for key, marks in self._marks.items():
            card = cards.get(key)
            if card is None:
                continue
            for rect, mark in self._pills(card, list(marks.values())):
                if rect.contains(x, y):
                    return mark.tooltip or mark.text
        return ""

    # -- painting -----------------------------------------------------------------------
    def paint(self, painter: QPainter, cards: Mapping[str, Any]) -> None:
        """Draw the ghosts and marks over ``cards`` (key -> NodeCard, scene coordinates)."""
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for ghost in self.ghosts:
            self._paint_ghost(painter, cards, ghost)
        painter.setFont(_font())
        for key, marks in self._marks.items():
            card = cards.get(key)
            if card is None:
                continue
            for rect, mark in self._pills(card, list(marks.values())):
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(mark.color))
                painter.drawRoundedRect(rect, rect.height() / 2, rect.height() / 2)
                painter.setPen(QColor("#ffffff"))
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, mark.text)
        painter.restore()

    @staticmethod
    def _pills(card: Any, marks: list[Mark]) -> list[tuple[QRectF, Mark]]:
        """Where each mark's pill goes: above marks left to right on the card's top
        edge, below marks stacked under its bottom edge."""
        fm = QFontMetricsF(_font())
        out: list[tuple[QRectF, Mark]] = []
        x_above = card.px + 6
        y_below = card.py + card.height + 3
        for mark in marks:
            w = min(fm.horizontalAdvance(mark.text) + 14, max(card.width, 160.0) * 1.6)
            if mark.where == ABOVE:
                rect = QRectF(x_above, card.py - 9, w, 16)
                x_above += w + 4
            else:
                rect = QRectF(card.px + card.width / 2 - w / 2, y_below, w, 16)
                y_below += 18
            out.append((rect, mark))
        return out

    def _paint_ghost(self, painter: QPainter, cards: Mapping[str, Any], ghost: Ghost) -> None:
        src = cards.get(ghost.parent)
        if src is None:
            return
        color = QColor(self.ghost_color)
        a = QPointF(src.px + src.width / 2, src.py + src.height)
        pen = QPen(color, 2.5, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        dst = cards.get(ghost.child) if ghost.child is not None else None
        if dst is None:            # a staged detach: a cross under the card
            c = QPointF(a.x(), a.y() + 18)
            painter.drawLine(QPointF(c.x() - 7, c.y() - 7), QPointF(c.x() + 7, c.y() + 7))
            painter.drawLine(QPointF(c.x() - 7, c.y() + 7), QPointF(c.x() + 7, c.y() - 7))
            label_at = QPointF(c.x() + 12, c.y() + 4)
        else:
            b = QPointF(dst.px + dst.width / 2, dst.py)
            dy = max(30.0, abs(b.y() - a.y()) / 2)
            path = QPainterPath(a)
            path.cubicTo(QPointF(a.x(), a.y() + dy), QPointF(b.x(), b.y() - dy), b)
            painter.drawPath(path)
            painter.setBrush(color)
            painter.drawEllipse(b, 4.5, 4.5)
            mid = path.pointAtPercent(0.5)
            label_at = QPointF(mid.x() + 8, mid.y())
        painter.setFont(_font())
        fm = QFontMetricsF(_font())
        plate = QRectF(label_at.x() - 4, label_at.y() - fm.ascent() - 2,
                       fm.horizontalAdvance(ghost.label) + 8, fm.height() + 4)
        painter.setPen(QPen(color, 1.0))
        painter.setBrush(QColor("#ffffff"))
        painter.drawRoundedRect(plate, 4, 4)
        painter.setPen(color)
        painter.drawText(label_at, ghost.label)

"""The card layer: paints every node card of the scene in one pass.

Node cards are :class:`~gui.views.items.NodeItem` items for the mouse, but they
have no contents of their own: with a thousand cards, Qt would otherwise make a
thousand Python paint calls per frame, each with its own style option and painter
state. This layer draws them instead. Zoomed far out a card is a filled
rectangle, and the rectangles of each colour go to Qt in one call, kept between
frames until a card moves, changes or is selected; closer in, each visible card
is drawn in full (:meth:`NodeItem.paint_card`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from gui.views.items import LOW_DETAIL, NODE_Z

if TYPE_CHECKING:
    from gui.views.items import NodeItem
    from gui.views.palette import Scheme

#: room around a card for its halo, border and job badge (item coordinates)
_PAD_X, _PAD_TOP, _PAD_BOTTOM = 6.0, 14.0, 10.0


class CardLayer(QGraphicsItem):
    """Draws the cards of ``nodes`` (the scene's key → NodeItem map, shared)."""

    def __init__(self, nodes: Mapping[str, NodeItem], scheme: Scheme) -> None:
        super().__init__()
        self.nodes = nodes
        self.scheme = scheme
        self._rects: dict[str, list[QRectF]] | None = None
        self._bounds: QRectF | None = QRectF()
        self.setZValue(NODE_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    # -- invalidation -------------------------------------------------------------------
    def cards_moved(self) -> None:
        """Cards were added, removed or moved: bounds and rectangles are stale."""
        self._rects = None
        if self._bounds is not None:
            self.prepareGeometryChange()
            self._bounds = None
        self.update()

    def card_changed(self, card: NodeItem) -> None:
        """One card's look changed (text, badge, selection, drop state)."""
        self._rects = None
        self.update(card.mapRectToItem(self, card.boundingRect()).adjusted(
            -_PAD_X, -_PAD_TOP, _PAD_X, _PAD_BOTTOM))

    def selection_changed(self) -> None:
        self._rects = None
        self.update()

    def set_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self._rects = None
        self.update()

    # -- geometry -----------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        if self._bounds is None:
            self._bounds = QRectF()
            cards = self.cards_rect()
            if not cards.isEmpty():
                self._bounds = cards.adjusted(-_PAD_X, -_PAD_TOP, _PAD_X, _PAD_BOTTOM)
        return self._bounds

    def cards_rect(self) -> QRectF:
        """The rectangle the cards cover (empty when there are none)."""
        items = self.nodes.values()
        if not items:
            return QRectF()
        left, top = min(n.px for n in items), min(n.py for n in items)
        right = max(n.px + n.width for n in items)
        bottom = max(n.py + n.height for n in items)
        return QRectF(left, top, right - left, bottom - top)

    # -- painting -----------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        if not self.nodes:
            return
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < LOW_DETAIL:
            self._paint_rects(painter)
            return
        exposed = option.exposedRect
        x0, y0, x1, y1 = exposed.left(), exposed.top(), exposed.right(), exposed.bottom()
        for item in self.nodes.values():
            x, y = item.px, item.py
            if (x - _PAD_X > x1 or y - _PAD_TOP > y1 or x + item.width + _PAD_X < x0
                    or y + item.height + _PAD_BOTTOM < y0):
                continue
            painter.translate(x, y)
            item.paint_card(painter, lod)
            painter.translate(-x, -y)

    def _paint_rects(self, painter: QPainter) -> None:
        if self._rects is None:
            # rectangles by colour: Qt fills a list of them in one call, on its fast
            # path for axis-aligned rectangles (a path of rectangles goes through the
            # general rasteriser, several times slower)
            scene = self.scene()
            selected = set(scene.selectedItems()) if scene is not None else set()
            groups: dict[str, list[QRectF]] = {}
            for item in self.nodes.values():
                purpose = "selected" if selected and item in selected else item.purpose
                rects = groups.get(purpose)
                if rects is None:
                    rects = groups[purpose] = []
                rects.append(QRectF(item.px, item.py, item.width, item.height))
            self._rects = groups
        painter.setPen(Qt.PenStyle.NoPen)
        # a few pixels each at this zoom: smoothing their edges is not worth it
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        s = self.scheme
        for purpose, rects in self._rects.items():
            painter.setBrush(s.color(purpose))
            painter.drawRects(rects)

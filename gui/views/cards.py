"""The card layer: paints every node card of the scene in one pass.

Node cards (:class:`~gui.views.node_card.NodeCard`) are plain objects, not graphics
items: with a thousand cards, Qt would otherwise keep a thousand items and make
a thousand Python paint calls per frame, each with its own style option and
painter state. This layer draws them, and answers which card lies under a point
or inside a rectangle (a grid of buckets, rebuilt lazily after cards move).
Zoomed far out a card is a filled rectangle, and the rectangles of each colour
go to Qt in one call, kept between frames until a card moves, changes or is
selected; closer in, each visible card is drawn in full (:meth:`NodeCard.paint_card`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from gui.views.levels import LOW_DETAIL, NODE_Z

if TYPE_CHECKING:
    from gui.views.node_card import NodeCard
    from gui.views.palette import Scheme

#: room around a card for its halo, border and job badge (item coordinates)
_PAD_X, _PAD_TOP, _PAD_BOTTOM = 10.0, 14.0, 12.0
#: side of a hit-test bucket in scene units (about a card and its gap)
_CELL = 256.0


class CardLayer(QGraphicsItem):
    """Draws the cards of ``nodes`` (the scene's key → NodeCard map, shared)."""

    def __init__(self, nodes: Mapping[str, NodeCard], scheme: Scheme) -> None:
        super().__init__()
        self.nodes = nodes
        self.scheme = scheme
        self._rects: dict[str, list[QRectF]] | None = None
        self._bounds: QRectF | None = QRectF()
        self._cover: QRectF | None = None  # cards_rect(), until a card moves
        self._grid: dict[tuple[int, int], list[NodeCard]] | None = None
        #: told when one card was placed somewhere else (the scene's obstacle index)
        self.placed: Callable[[NodeCard], None] | None = None
        self.setZValue(NODE_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    # -- invalidation -------------------------------------------------------------------
    def cards_moved(self) -> None:
        """Cards were added, removed or moved: bounds and rectangles are stale."""
        self._rects = None
        self._grid = None
        self._cover = None
        if self._bounds is not None:
            self.prepareGeometryChange()
            self._bounds = None
        self.update()

    def card_placed(self, card: NodeCard) -> None:
        """One card moved (:meth:`NodeCard.place`)."""
        if self.placed is not None:
            self.placed(card)
        self.cards_moved()

    def card_changed(self, card: NodeCard) -> None:
        """One card's look changed (text, badge, selection, drop state)."""
        self._rects = None
        self.update(card.scene_rect().adjusted(-_PAD_X, -_PAD_TOP, _PAD_X, _PAD_BOTTOM))

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
        if self._cover is None:
            inf = float("inf")
            left = top = inf
            right = bottom = -inf
            for n in self.nodes.values():  # one pass, no min()/max() calls
                x, y = n.px, n.py
                if x < left:
                    left = x
                if y < top:
                    top = y
                if x + n.width > right:
                    right = x + n.width
                if y + n.height > bottom:
                    bottom = y + n.height
            self._cover = QRectF() if left == inf else QRectF(left, top, right - left,
                                                              bottom - top)
        return QRectF(self._cover)

    # -- hit tests ----------------------------------------------------------------------
    def _buckets(self) -> dict[tuple[int, int], list[NodeCard]]:
        if self._grid is None:
            grid: dict[tuple[int, int], list[NodeCard]] = {}
            for card in self.nodes.values():
                for i in range(int(card.px // _CELL), int((card.px + card.width) // _CELL) + 1):
                    for j in range(int(card.py // _CELL),
                                   int((card.py + card.height) // _CELL) + 1):
                        grid.setdefault((i, j), []).append(card)
            self._grid = grid
        return self._grid

    def card_at(self, x: float, y: float) -> NodeCard | None:
        """The card under the scene point (x, y); the last drawn (topmost) wins."""
        found = None
        for card in self._buckets().get((int(x // _CELL), int(y // _CELL)), ()):
            if card.contains(x, y):
                found = card
        return found

    def cards_in(self, rect: QRectF) -> list[NodeCard]:
        """Cards that meet ``rect`` (scene coordinates), each once."""
        x0, y0, x1, y1 = rect.left(), rect.top(), rect.right(), rect.bottom()
        grid = self._buckets()
        seen: dict[str, NodeCard] = {}
        for i in range(int(x0 // _CELL), int(x1 // _CELL) + 1):
            for j in range(int(y0 // _CELL), int(y1 // _CELL) + 1):
                for card in grid.get((i, j), ()):
                    if (card.px <= x1 and card.px + card.width >= x0
                            and card.py <= y1 and card.py + card.height >= y0):
                        seen[card.key] = card
        return list(seen.values())

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
            groups: dict[str, list[QRectF]] = {}
            for item in self.nodes.values():
                purpose = "selected" if item.selected else item.purpose
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

"""The one layer that paints every link of the scene, and their labels.

An :class:`~gui.views.edges.Edge` is plain geometry; :class:`EdgeLayer` draws all of
them, one path per style, traced once and kept until an edge changes, and finds the link
under the cursor; :class:`EdgeLabelLayer` draws their labels above the cards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from gui.views.edges import HOVER_PIXELS, Edge
from gui.views.layout import Point
from gui.views.levels import EDGE_Z, LABEL_DETAIL, LABEL_Z, LOW_DETAIL
from gui.views.text import font, metrics

if TYPE_CHECKING:
    from gui.views.palette import Scheme


_PENS: dict[tuple[str, str, bool, bool], QPen] = {}


def edge_pen(scheme: Scheme, purpose: str, hover: bool, frozen: bool) -> QPen:
    """Pens by (scheme, role purpose, hover, frozen), made once."""
    key = (scheme.name, purpose, hover, frozen)
    pen = _PENS.get(key)
    if pen is None:
        width = {"edge_backing": 2.6, "edge_file": 1.2, "edge_root": 2.0}.get(purpose, 1.6)
        pen = QPen(scheme.color(purpose), width + (1.5 if hover else 0.0))
        if frozen:
            pen.setStyle(Qt.PenStyle.DashDotLine)
        elif purpose == "edge_file":
            pen.setStyle(Qt.PenStyle.DashLine)
        elif purpose == "edge_job":
            pen.setStyle(Qt.PenStyle.DotLine)
        _PENS[key] = pen
    return pen


_HAIRLINES: dict[tuple[str, str], QPen] = {}


def _hairline(scheme: Scheme, purpose: str) -> QPen:
    key = (scheme.name, purpose)
    pen = _HAIRLINES.get(key)
    if pen is None:
        pen = QPen(scheme.color(purpose), 0)   # width 0: one pixel at any zoom
        _HAIRLINES[key] = pen
    return pen


class EdgeLayer(QGraphicsItem):
    """Paints every :class:`Edge` of the scene, grouped by style; finds the link
    under the cursor for hover, tooltips and grabs."""

    def __init__(self, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme
        self.edges: dict[Edge, None] = {}    # insertion-ordered set
        self.hovered: Edge | None = None
        #: which card (if any) covers a scene point: no link is hovered under a card
        self.card_at: Callable[[float, float], object] | None = None
        #: the scene's router: a link's path around the cards where they are now
        self.router: Callable[[Edge], list[Point]] | None = None
        self._paths: dict[tuple[str, bool], QPainterPath] | None = None
        self._lines: dict[str, QPainterPath] | None = None
        self._bounds: QRectF | None = QRectF()
        #: the links' labels, drawn over the cards by their own layer
        self.labels = EdgeLabelLayer(self)
        self.setZValue(EDGE_Z)
        self.setAcceptHoverEvents(True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    # -- membership -------------------------------------------------------------------
    def add(self, edge: Edge, notify: bool = True) -> None:
        """Take ``edge`` in (``notify=False`` while building: one
        :meth:`edge_changed` afterwards covers them all)."""
        edge.layer = self
        self.edges[edge] = None
        if notify:
            self.edge_changed(edge)

    def remove(self, edge: Edge) -> None:
        self.edges.pop(edge, None)
        edge.layer = None
        if self.hovered is edge:
            self.hovered = None
            self.setToolTip("")
        self.edge_changed(edge)

    def clear(self) -> None:
        for e in self.edges:
            e.layer = None
        self.edges.clear()
        self.hovered = None
        self.edge_changed(None)

    def edge_changed(self, edge: Edge | None) -> None:
        """Drop what was traced from the edges; repaint (bounds are recomputed lazily)."""
        self._paths = None
        self._lines = None
        if self._bounds is not None:
            self.prepareGeometryChange()
            self._bounds = None
        self.update()
        self.labels.links_changed()

    def set_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self.update()
        self.labels.update()

    def set_extent(self, rect: QRectF) -> None:
        """All links were laid out anew: drop what was traced from them and take
        ``rect`` as the layer's bounds until a link changes — the scene knows where
        the links are (inside the picture it packed), so a first paint need not look
        at every link's bounds."""
        self._paths = None
        self._lines = None
        self._bounds = QRectF(rect)
        self.prepareGeometryChange()
        self.update()
        self.labels.links_changed()

    # -- geometry ---------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        if self._bounds is None:
            if not self.edges:
                self._bounds = QRectF()
            else:
                inf = float("inf")
                left = top = inf
                right = bottom = -inf
                labelled = False
                for e in self.edges:  # one pass, no min()/max() calls
                    x0, y0, x1, y1 = e.bounds
                    if x0 < left:
                        left = x0
                    if y0 < top:
                        top = y0
                    if x1 > right:
                        right = x1
                    if y1 > bottom:
                        bottom = y1
                    labelled = labelled or bool(e.label_text())
                # labels sit on their links' midpoints: leave them room
                pad = 200.0 if labelled else 0.0
                self._bounds = QRectF(left - pad, top - 20, right - left + 2 * pad,
                                      bottom - top + 40)
        return self._bounds

    def edges_in(self, rect: QRectF) -> list[Edge]:
        """Links whose bounds meet ``rect`` (scene coordinates)."""
        x0, y0, x1, y1 = rect.left(), rect.top(), rect.right(), rect.bottom()
        return [e for e in self.edges
                if e.bounds[0] <= x1 and e.bounds[2] >= x0
                and e.bounds[1] <= y1 and e.bounds[3] >= y0]

    def edge_near(self, pos: QPointF, radius: float) -> Edge | None:
        """The link closest to ``pos`` within ``radius`` (scene units), if any."""
        x, y = pos.x(), pos.y()
        area = QRectF(x - radius, y - radius, 2 * radius, 2 * radius)
        best: tuple[float, Edge] | None = None
        for e in self.edges_in(area):
            d = e.distance(x, y)
            if d <= radius and (best is None or d < best[0]):
                best = (d, e)
        return best[1] if best else None

    # -- hover ------------------------------------------------------------------------
    def hoverEnterEvent(self, event: Any) -> None:
        self.hoverMoveEvent(event)

    def hoverMoveEvent(self, event: Any) -> None:
        pos = event.scenePos()
        if self.card_at is not None and self.card_at(pos.x(), pos.y()) is not None:
            self._set_hovered(None)  # a card covers its links' ends: the card has the pointer
            return
        view_scale = _scale_of(event.widget())
        self._set_hovered(self.edge_near(pos, HOVER_PIXELS / view_scale))

    def hoverLeaveEvent(self, event: Any) -> None:
        self._set_hovered(None)

    def _set_hovered(self, edge: Edge | None) -> None:
        if edge is self.hovered:
            return
        if self.hovered is not None:
            self.hovered.hover = False
        self.hovered = edge
        if edge is not None:
            edge.hover = True
        self.setToolTip(edge.tooltip() if edge is not None else "")
        self.update()

    # -- painting ---------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        if not self.edges:
            return
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if lod < LOW_DETAIL:
            self._paint_lines(painter)
            return
        s = self.scheme
        if self._paths is None:
            self._paths = {}
            for e in self.edges:
                if e.dimmed:       # faded on its own below (dimming re-traces)
                    continue
                key = e.style_key()
                path = self._paths.get(key)
                if path is None:
                    path = self._paths[key] = QPainterPath()
                e.trace(path)
        for (purpose, frozen), path in self._paths.items():
            painter.setPen(edge_pen(s, purpose, False, frozen))
            painter.drawPath(path)
        # the hovered link again on top, wider (hovering re-traces nothing)
        for e in self.edges:
            if e.hover or e.dimmed:
                painter.setOpacity(0.25 if e.dimmed else 1.0)
                painter.setPen(edge_pen(s, e.purpose(), e.hover, e.frozen))
                painter.drawPath(e.path())
                painter.setOpacity(1.0)

    def _paint_lines(self, painter: QPainter) -> None:
        if self._lines is None:
            # one path of one-pixel lines per colour: a cosmetic (zero-width) pen
            # draws a path with Qt's cosmetic stroker, a quarter faster here than
            # the same segments as QLineF objects, which Python must make one by one
            self._lines = {}
            for e in self.edges:
                path = self._lines.get(e._purpose)
                if path is None:
                    path = self._lines[e._purpose] = QPainterPath()
                route = e.route
                path.moveTo(*route[0])
                for x, y in route[1:]:
                    path.lineTo(x, y)
        for purpose, path in self._lines.items():
            painter.setPen(_hairline(self.scheme, purpose))
            painter.drawPath(path)



class EdgeLabelLayer(QGraphicsItem):
    """The links' labels (a job link's role, permissions), over the cards.

    Under the cards (with the links) a label that fell on a card could not be read; here
    each is drawn on a small plate of the card colour, above the cards and below the
    drag edge.
    """

    def __init__(self, links: EdgeLayer) -> None:
        super().__init__()
        self.links = links
        self._bounds: QRectF | None = None
        self.setZValue(LABEL_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def links_changed(self) -> None:
        if self._bounds is not None:
            self.prepareGeometryChange()
            self._bounds = None
        self.update()

    def boundingRect(self) -> QRectF:
        if self._bounds is None:
            self._bounds = QRectF(self.links.boundingRect())
        return self._bounds

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < LABEL_DETAIL or not self.links.edges:
            return
        f, fm = font("small"), metrics("small")
        s = self.links.scheme
        painter.setFont(f)
        for e in self.links.edges_in(option.exposedRect):
            text = e.label_text()
            if not text:
                continue
            w, h = fm.horizontalAdvance(text), fm.height()
            cx, cy = e.xy_at(0.5)
            plate = QRectF(cx - w / 2 - 4, cy - h / 2 - 1, w + 8, h + 2)
            painter.setPen(QPen(s.color("card_border"), 0.8))
            painter.setBrush(s.color("card"))
            painter.drawRoundedRect(plate, 4, 4)
            painter.setPen(s.color("text"))
            painter.drawText(plate, Qt.AlignmentFlag.AlignCenter, text)


def _scale_of(widget: QWidget | None) -> float:
    """The zoom of the view a hover event came from (1.0 when unknown)."""
    view = widget.parent() if widget is not None else None
    transform = getattr(view, "transform", None)
    if transform is None:
        return 1.0
    return max(transform().m11(), 0.01)

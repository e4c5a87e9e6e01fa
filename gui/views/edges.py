"""Child links on the canvas: one :class:`Edge` per link, all painted by one layer.

A graph of a thousand nodes has a thousand links. As separate graphics items each
would cost a Python object with its own pen, path and hover band to build, and a
Python paint call per frame. Here an :class:`Edge` is plain geometry (its path,
bounds and style, a few floats), and the scene's single :class:`EdgeLayer` draws
all of them: one path per style, traced from the edges once and kept until one of
them changes, so a frame costs a handful of Qt calls whatever the graph's size.
Zoomed far out (where cards are plain rectangles too) links are one-pixel lines.
The layer also answers "which link is under the cursor" for hover, tooltips and the
grab of a backing arrow.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from gui.views.layout import Point, rounded
from gui.views.levels import EDGE_Z, LABEL_DETAIL, LABEL_Z, LOW_DETAIL
from gui.views.text import font, metrics

if TYPE_CHECKING:
    from engine.graph.snapshot import EdgeInfo
    from gui.views.node_card import NodeCard
    from gui.views.palette import Scheme

#: distance (in pixels on screen) within which the cursor is "on" a link
HOVER_PIXELS = 5.0
#: half the widest edge pen (hovered backing: 4.1), rounded up
_EDGE_MARGIN = 6.0

#: permissions in the words a link's label uses (the legend over the canvas explains them)
PERM_WORDS = {"consistent-read": "read", "write": "write",
              "write-unchanged": "unchanged-write", "resize": "resize",
              "graph-mod": "graph-mod"}


def _short_perm(p: str) -> str:
    return PERM_WORDS.get(p, p)


def purpose_of(info: EdgeInfo, parent_kind: str) -> str:
    """The scheme colour (and pen) a link is drawn with."""
    if parent_kind == "block-job":
        return "edge_job"
    return _PURPOSE_OF_ROLE.get(info.role, "edge_other")


_PURPOSE_OF_ROLE = {"backing": "edge_backing", "file": "edge_file", "root": "edge_root"}


class Edge:
    """One child link: its endpoints' cards, the path drawn between them, its style.

    Not a graphics item: the :class:`EdgeLayer` paints it. ``route`` is the path's
    corner points (from the layout, or from the router after a card moved) and
    ``points`` the line as drawn, corners rounded (:func:`~gui.views.layout.rounded`);
    ``blockgraph render -o FILE.json`` writes ``points``.
    """

    __slots__ = (
        "_bounds",
        "_label",
        "_points",
        "_purpose",
        "dimmed",
        "dst",
        "hover",
        "info",
        "layer",
        "route",
        "show_perms",
        "sideways",
        "src",
    )

    def __init__(self, info: EdgeInfo, parent_item: NodeCard, child_item: NodeCard,
                 layer: EdgeLayer | None = None,
                 route: list[Point] | None = None) -> None:
        self.info = info
        self.src = parent_item
        self.dst = child_item
        self.show_perms = False
        self.hover = False
        self.dimmed = False
        self.layer = layer
        self._purpose = purpose_of(info, parent_item.info.kind)
        self.sideways = child_item.beside and info.role == "file"
        self._label: str | None = None
        self.route: list[Point] = []
        self._points: list[Point] | None = None
        self._bounds: tuple[float, float, float, float] | None = None
        parent_item.edges.append(self)
        child_item.edges.append(self)
        if route is not None:
            self.set_route(route)
        else:
            self.adjust()

    # -- model ------------------------------------------------------------------------
    def purpose(self) -> str:
        return self._purpose

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.info.parent, self.info.role, self.info.child)

    @property
    def frozen(self) -> bool:
        return bool(getattr(self.info, "frozen", False))

    def style_key(self) -> tuple[str, bool]:
        return (self._purpose, self.frozen)

    def set_show_perms(self, on: bool) -> None:
        self.show_perms = on
        self._label = None
        self._changed()

    def set_dimmed(self, on: bool) -> None:
        """Fade the link (while a drag re-points it)."""
        if on != self.dimmed:
            self.dimmed = on
            self._changed()

    def detach(self) -> None:
        """Forget the endpoints (before removal from the scene)."""
        for item in (self.src, self.dst):
            if self in item.edges:
                item.edges.remove(self)

    def _changed(self) -> None:
        if self.layer is not None:
            self.layer.edge_changed(self)

    def label_text(self) -> str:
        if self._label is None:
            purpose = self._purpose
            label = "" if purpose in ("edge_backing", "edge_file", "edge_root") \
                else self.info.role
            if self.show_perms:
                perm = "+".join(_short_perm(p) for p in self.info.perm) or "nothing"
                shared = "+".join(_short_perm(p) for p in self.info.shared_perm) or "nothing"
                label = (f"{self.info.role}: " if label else "") + \
                    f"takes {perm} · shares {shared}"
            self._label = label
        return self._label

    def tooltip(self) -> str:
        e = self.info
        perm = ", ".join(e.perm) or "none"
        shared = ", ".join(e.shared_perm) or "none"
        frozen = "<br><i>frozen by a running job</i>" if self.frozen else ""
        drag = ("<br>Drag the arrow's end onto another node to re-point it; "
                "drop it on empty canvas to detach.") if e.role == "backing" else ""
        return (f"<b>{e.parent}</b> —{e.role}→ <b>{e.child}</b><br>"
                f"perm: {perm}<br>shared: {shared}{frozen}{drag}")

    # -- geometry ---------------------------------------------------------------------
    def adjust(self) -> None:
        """Route the link again (an end moved): around the cards when the layer has
        a router, else the plain shape between the two ports."""
        router = self.layer.router if self.layer is not None else None
        self.set_route(router(self) if router is not None else self.plain_route())

    def plain_route(self) -> list[Point]:
        """Down from the parent's bottom, across, down into the child's top (or a
        straight line to a protocol node beside its parent), ignoring other cards."""
        src, dst = self.src, self.dst
        if self.sideways:
            y = src.py + src.height / 2
            return [(src.px + src.width, y), (dst.px, dst.py + dst.height / 2)]
        ax, ay = src.px + src.width / 2, src.py + src.height
        bx, by = dst.px + dst.width / 2, dst.py
        if abs(ax - bx) < 0.01 and by > ay:
            return [(ax, ay), (bx, by)]
        ym = (ay + by) / 2 if by > ay + 36 else ay + 18
        return [(ax, ay), (ax, ym), (bx, ym), (bx, by)]

    def set_route(self, route: list[Point]) -> None:
        """Take a new path (corner points) and redraw. (The rounded line lies within
        the corners' bounds; it is worked out when first needed.)"""
        self.route = route
        self._points = None
        self._bounds = None
        self._changed()

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Left, top, right, bottom around the line, its arrow head and its pen
        (worked out when first asked: a first paint of a whole layout needs none)."""
        if self._bounds is None:
            m = _EDGE_MARGIN
            xs = [x for x, _ in self.route]
            ys = [y for _, y in self.route]
            self._bounds = (min(xs) - 5 - m, min(ys) - 8 - m, max(xs) + 5 + m, max(ys) + m)
        return self._bounds

    @property
    def points(self) -> list[Point]:
        """The line as drawn: the route with its corners rounded."""
        if self._points is None:
            self._points = rounded(self.route)
        return self._points

    def endpoints(self) -> tuple[QPointF, QPointF]:
        (ax, ay), (bx, by) = self.points[0], self.points[-1]
        return QPointF(ax, ay), QPointF(bx, by)

    def child_end(self) -> QPointF:
        return QPointF(*self.points[-1])

    def xy_at(self, t: float) -> tuple[float, float]:
        """The point at fraction ``t`` of the line's length (0 parent, 1 child)."""
        pts = self.points
        lengths = [abs(bx - ax) + abs(by - ay) if ax == bx or ay == by
                   else ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
                   for (ax, ay), (bx, by) in itertools.pairwise(pts)]
        total = sum(lengths)
        if total <= 0:
            return pts[0]
        goal = max(0.0, min(1.0, t)) * total
        for (ax, ay), (bx, by), seg in zip(pts, pts[1:], lengths, strict=False):
            if goal <= seg and seg > 0:
                f = goal / seg
                return ax + (bx - ax) * f, ay + (by - ay) * f
            goal -= seg
        return pts[-1]

    def point_at(self, t: float) -> QPointF:
        """A point along the link's line (0 = parent end, 1 = child end)."""
        return QPointF(*self.xy_at(t))

    def distance(self, x: float, y: float) -> float:
        """Distance from (x, y) to the line (for hit tests)."""
        pts = self.points
        return min((_segment_distance(x, y, ax, ay, bx, by)
                    for (ax, ay), (bx, by) in itertools.pairwise(pts)),
                   default=float("inf"))

    def trace(self, path: QPainterPath) -> None:
        """Append this link's line (and arrow head) to ``path``."""
        pts = self.points
        path.moveTo(*pts[0])
        for x, y in pts[1:]:
            path.lineTo(x, y)
        if self.sideways:
            return
        (ax, ay), (bx, by) = pts[-2], pts[-1]
        length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5 or 1.0
        ux, uy = (bx - ax) / length, (by - ay) / length
        path.moveTo(bx - 8 * ux - 5 * uy, by - 8 * uy + 5 * ux)
        path.lineTo(bx, by)
        path.lineTo(bx - 8 * ux + 5 * uy, by - 8 * uy - 5 * ux)

    def path(self) -> QPainterPath:
        p = QPainterPath()
        self.trace(p)
        return p


def _segment_distance(x: float, y: float, ax: float, ay: float, bx: float, by: float
                      ) -> float:
    dx, dy = bx - ax, by - ay
    n = dx * dx + dy * dy
    t = 0.0 if n == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / n))
    ex, ey = ax + t * dx - x, ay + t * dy - y
    return float((ex * ex + ey * ey) ** 0.5)


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

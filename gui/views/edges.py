"""Child links on the canvas: one :class:`Edge` per link, all painted by one layer
(:class:`~gui.views.edge_layer.EdgeLayer`).

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
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF
from PySide6.QtGui import QPainterPath

from gui.views.layout import Point, rounded

if TYPE_CHECKING:
    from engine.graph.snapshot import EdgeInfo
    from gui.views.edge_layer import EdgeLayer
    from gui.views.node_card import NodeCard

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

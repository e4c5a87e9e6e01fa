"""A compact, read-only drawing of a GraphSnapshot for the compare and offline views.

The editor's canvas is for editing; this view only shows: each block node as a box
(name, driver, file name), backing links as solid arrows and other links as thin
ones. Protocol nodes (``file``) are folded into their format node's caption so chains
stay readable. The boxes are placed and the links routed by the editor's own layout
(:func:`gui.views.layout.draw`): parts layered and packed, links around the boxes.
Nodes can be highlighted (a tour step points at them), marked as having a problem,
and edges drawn as broken (offline chains).

``show_snapshot(snapshot)`` and ``set_highlight(keys)`` are the same calls the tour
panel makes on any canvas; ``set_problems(node_keys, broken_edges)`` marks an
offline chain's broken links. ``nodeContextMenuRequested(key, global_pos)`` lets the
owner offer actions (the offline window offers fixes there).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from engine.graph.snapshot import GraphSnapshot, NodeInfo
from gui.views.layout import Drawing, Geometry, draw, rounded

BOX_W, BOX_H, GAP_X, GAP_Y = 190.0, 58.0, 36.0, 54.0
COLOURS = {
    "background": "#fafafa", "box": "#ffffff", "border": "#5f6b7a", "text": "#1f2933",
    "muted": "#6b7785", "highlight": "#ffe082", "highlight_border": "#e6a700",
    "problem": "#fdecea", "problem_border": "#c62828", "broken": "#c62828",
    "backing": "#37474f", "other": "#90a4ae", "backend": "#e3f2fd", "job": "#ede7f6",
    "placeholder": "#fff5f5",
}
EdgeKey = tuple[str, str, str]


def _c(name: str) -> QColor:
    return QColor(COLOURS[name])


def _folded(snapshot: GraphSnapshot) -> dict[str, str]:
    """Protocol nodes shown inside their parent: child key -> parent key."""
    folded = {}
    for key, info in snapshot.nodes.items():
        if info.driver == "file" and info.kind == "block-node":
            parents = snapshot.parents(key)
            if len(parents) == 1 and parents[0].role == "file":
                folded[key] = parents[0].parent
    return folded


#: the boxes' sizes and gaps for the shared layout (protocol nodes folded into captions)
COMPACT_GEOMETRY = Geometry(node_w=BOX_W, node_h=BOX_H, small_h=BOX_H, beside_w=BOX_W * 0.8,
                            beside_h=BOX_H * 0.8, col_gap=GAP_X, row_gap=GAP_Y)


def compact_drawing(snapshot: GraphSnapshot, hidden: Iterable[str] = ()) -> Drawing:
    """The editor's layout (:func:`gui.views.layout.draw`) of the nodes not hidden,
    at the compact boxes' size: parts layered and packed, links in free space."""
    hidden = set(hidden)
    shown = GraphSnapshot([n for k, n in snapshot.nodes.items() if k not in hidden],
                          [e for e in snapshot.edges
                           if e.parent not in hidden and e.child not in hidden])
    return draw(shown, COMPACT_GEOMETRY)


class NodeBox(QGraphicsRectItem):
    def __init__(self, info: NodeInfo, caption: str) -> None:
        super().__init__(0, 0, BOX_W, BOX_H)
        self.info = info
        self.highlighted = False
        self.problem = False
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setToolTip(_tooltip(info))
        title = QGraphicsSimpleTextItem(_title(info), self)
        f = QFont()
        f.setBold(True)
        f.setPointSizeF(10.5)
        title.setFont(f)
        title.setBrush(_c("text"))
        title.setPos(10, 7)
        sub = QGraphicsSimpleTextItem(caption, self)
        sf = QFont()
        sf.setPointSizeF(8.5)
        sub.setFont(sf)
        sub.setBrush(_c("muted"))
        sub.setPos(10, 32)
        self._restyle()

    def set_state(self, highlighted: bool, problem: bool) -> None:
        self.highlighted, self.problem = highlighted, problem
        self._restyle()

    def _restyle(self) -> None:
        fill, border, width = "box", "border", 1.4
        if self.info.kind == "block-backend":
            fill = "backend"
        elif self.info.kind == "block-job":
            fill = "job"
        if self.info.driver in ("missing", "unreadable"):
            fill, border = "placeholder", "problem_border"
        if self.problem:
            fill, border, width = "problem", "problem_border", 2.2
        if self.highlighted:
            fill, width = "highlight", 3.0
            border = "problem_border" if self.problem else "highlight_border"
        pen = QPen(_c(border), width)
        if self.info.driver in ("missing", "unreadable"):
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setBrush(QBrush(_c(fill)))


def _title(info: NodeInfo) -> str:
    name = info.name or info.key
    if len(name) > 24:
        name = "…" + name[-23:]
    return name


def _caption(info: NodeInfo, file_child: NodeInfo | None) -> str:
    parts = [info.driver or info.kind]
    if info.virtual_size:
        parts.append(_size(info.virtual_size))
    source = file_child.filename if file_child is not None else info.filename
    if source and not source.startswith("json:"):
        parts.append(os.path.basename(source))
    if info.read_only and info.kind == "block-node":
        parts.append("ro")
    text = " · ".join(parts)
    return text if len(text) <= 34 else text[:33] + "…"


def _size(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("k", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _tooltip(info: NodeInfo) -> str:
    lines = [f"{info.name or info.key} ({info.driver or info.kind})"]
    if info.filename:
        lines.append(info.filename)
    if info.header_backing:
        lines.append(f"header backing: {info.header_backing}")
    for p in info.info.get("problems", ()) if info.info else ():
        lines.append(f"⚠ {p}")
    return "\n".join(lines)


class EdgeLine(QGraphicsPathItem):
    """A link along its routed line (corners rounded), its role written halfway."""

    def __init__(self, key: EdgeKey, route: list[tuple[float, float]], broken: bool) -> None:
        super().__init__()
        self.key = key
        self.broken = broken
        role = key[1]
        points = rounded(route)
        path = QPainterPath(QPointF(*points[0]))
        for x, y in points[1:]:
            path.lineTo(x, y)
        self.setPath(path)
        end = QPointF(*points[-1])
        last = QPointF(*points[-2]) if len(points) > 1 else end
        dx, dy = end.x() - last.x(), end.y() - last.y()
        length = (dx * dx + dy * dy) ** 0.5 or 1.0
        ux, uy = dx / length, dy / length
        colour = _c("broken") if broken else _c("backing" if role == "backing" else "other")
        pen = QPen(colour, 2.6 if broken else (2.0 if role == "backing" else 1.2))
        if broken:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setZValue(-1)
        head = QPolygonF([end, end + QPointF(-11 * ux - 6 * uy, -11 * uy + 6 * ux),
                          end + QPointF(-11 * ux + 6 * uy, -11 * uy - 6 * ux)])
        arrow = QGraphicsPathItem(self)
        ap = QPainterPath()
        ap.addPolygon(head)
        ap.closeSubpath()
        arrow.setPath(ap)
        arrow.setBrush(colour)
        arrow.setPen(QPen(colour, 1))
        label = QGraphicsSimpleTextItem(("✘ " if broken else "") + role, self)
        lf = QFont()
        lf.setPointSizeF(8)
        label.setFont(lf)
        label.setBrush(colour)
        label.setPos(path.pointAtPercent(0.5) + QPointF(6, -8))


class CompactGraphView(QGraphicsView):
    """Draws one snapshot; redraws from scratch on every change (graphs are small)."""

    nodeContextMenuRequested = Signal(str, QPoint)
    nodeActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, fold_protocol: bool = True) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(_c("background"))
        self.fold_protocol = fold_protocol
        self.snapshot: GraphSnapshot | None = None
        self.highlight: tuple[str, ...] = ()
        self.problem_nodes: set[str] = set()
        self.broken_edges: set[EdgeKey] = set()
        self.boxes: dict[str, NodeBox] = {}
        self.lines: dict[EdgeKey, EdgeLine] = {}

    # -- the canvas calls -----------------------------------------------------------------
    def show_snapshot(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot
        self._rebuild()

    def set_highlight(self, keys: Iterable[str]) -> None:
        self.highlight = tuple(keys)
        for k, box in self.boxes.items():
            box.set_state(k in self.highlight, k in self.problem_nodes)

    def set_problems(self, node_keys: Iterable[str], broken_edges: Iterable[EdgeKey]) -> None:
        self.problem_nodes = set(node_keys)
        self.broken_edges = set(broken_edges)
        self._rebuild()

    # -- drawing --------------------------------------------------------------------------
    def _rebuild(self) -> None:
        scene = self.scene()
        scene.clear()
        self.boxes, self.lines = {}, {}
        snap = self.snapshot
        if snap is None:
            return
        folded = _folded(snap) if self.fold_protocol else {}
        file_child = {parent: snap.nodes[child] for child, parent in folded.items()}
        drawing = compact_drawing(snap, folded)
        for key, (x, y, _w, _h) in drawing.rects.items():
            info = snap.nodes[key]
            box = NodeBox(info, _caption(info, file_child.get(key)))
            box.setPos(QPointF(x, y))
            box.set_state(key in self.highlight, key in self.problem_nodes)
            scene.addItem(box)
            self.boxes[key] = box
        for e in snap.edges:
            edge_key = (e.parent, e.role, e.child)
            route = drawing.paths.get(edge_key)
            if route is None:
                continue
            line = EdgeLine(edge_key, route, edge_key in self.broken_edges)
            scene.addItem(line)
            self.lines[edge_key] = line
        rect = scene.itemsBoundingRect().adjusted(-30, -30, 30, 30)
        scene.setSceneRect(rect)
        self.fit()

    def fit(self) -> None:
        if self.scene() is not None and not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
            if self.transform().m11() > 1.0:
                self.resetTransform()

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().resizeEvent(event)
        self.fit()

    def _key_at(self, pos: QPoint) -> str | None:
        item = self.itemAt(pos)
        while item is not None and not isinstance(item, NodeBox):
            item = item.parentItem()
        return item.info.key if isinstance(item, NodeBox) else None

    def contextMenuEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        key = self._key_at(event.pos())
        if key is not None:
            self.nodeContextMenuRequested.emit(key, event.globalPos())

    def mouseDoubleClickEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        key = self._key_at(event.position().toPoint())
        if key is not None:
            self.nodeActivated.emit(key)
        super().mouseDoubleClickEvent(event)

    def box_rect(self, key: str) -> QRectF:
        return self.boxes[key].sceneBoundingRect()

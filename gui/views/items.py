"""Graphics items of the canvas: node cards, edges by role, the live drag edge.

Items are projections of :class:`~engine.graph.snapshot.NodeInfo` and
:class:`~engine.graph.snapshot.EdgeInfo`: the scene creates, updates and removes
them from snapshot diffs, and nothing else changes them. Painting keeps a
level of detail: zoomed far out a card is one filled rectangle, so thousands of
nodes repaint quickly; the text a card shows is laid out once per update, not
per paint.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsSimpleTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from gui.views.layout import Geometry

if TYPE_CHECKING:
    from engine.graph.snapshot import EdgeInfo, NodeInfo
    from gui.views.palette import Scheme

NODE_Z = 10.0
EDGE_Z = 1.0
DRAG_Z = 50.0

PROTOCOL_DRIVERS = frozenset({
    "file", "host_device", "host_cdrom", "null-co", "null-aio", "nbd", "iscsi", "nfs",
    "ssh", "http", "https", "ftp", "ftps", "gluster", "rbd", "nvme", "io_uring",
})
FILTER_DRIVERS = frozenset({
    "throttle", "copy-on-read", "compress", "preallocate", "blkdebug", "blkverify",
    "blklogwrites", "copy-before-write", "snapshot-access", "commit_top", "mirror_top",
    "quorum", "replication",
})

_FONTS: dict[str, QFont] = {}
_METRICS: dict[str, QFontMetricsF] = {}

_NODE_FLAGS = (QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
               | QGraphicsItem.GraphicsItemFlag.ItemIsMovable
               | QGraphicsItem.GraphicsItemFlag.ItemIsFocusable)


def font(kind: str) -> QFont:
    """Shared fonts for card text (created once; QFont construction is not free)."""
    if kind not in _FONTS:
        f = QFont()
        if kind == "title":
            f.setPointSizeF(10.0)
            f.setBold(True)
        elif kind == "auto":
            f.setPointSizeF(10.0)
            f.setItalic(True)
        elif kind == "small":
            f.setPointSizeF(8.0)
        elif kind == "badge":
            f.setPointSizeF(7.5)
            f.setBold(True)
        else:
            f.setPointSizeF(8.5)
        _FONTS[kind] = f
    return _FONTS[kind]


def metrics(kind: str) -> QFontMetricsF:
    if kind not in _METRICS:
        _METRICS[kind] = QFontMetricsF(font(kind))
    return _METRICS[kind]


def human_size(n: int | None) -> str:
    """1536 -> '1.5 KiB' (binary units, like qemu-img)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" or size == int(size) else (
                f"{size:.1f} {unit}")
        size /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


def header_purpose(info: NodeInfo) -> str:
    """Which scheme colour the card's header strip uses."""
    if info.kind == "block-backend":
        return "backend_header"
    if info.kind == "block-job":
        return "job_header"
    if info.driver in PROTOCOL_DRIVERS:
        return "protocol_header"
    if info.driver in FILTER_DRIVERS:
        return "filter_header"
    return "format_header"


def display_file(filename: str) -> str:
    """What a card shows for a filename: the base name; for ``json:`` names, the base
    name of the innermost ``file`` child's filename (what the user opened)."""
    if filename.startswith("json:"):
        try:
            opts = json.loads(filename[5:])
        except ValueError:
            return filename
        while isinstance(opts, dict):
            if isinstance(opts.get("filename"), str):
                return os.path.basename(opts["filename"])
            opts = opts.get("file")
        return filename
    return os.path.basename(filename)


def display_name(info: NodeInfo) -> str:
    if info.kind == "block-backend":
        return info.name or "(anonymous backend)"
    return info.name


class NodeItem(QGraphicsItem):
    """A card for one node: name, driver, file, size, read-only, allocation, job badge."""

    def __init__(self, info: NodeInfo, scheme: Scheme, geometry: Geometry, beside: bool) -> None:
        super().__init__()
        self.key = info.key
        self.scheme = scheme
        self.geometry = geometry
        self.beside = beside
        self.edges: list[EdgeItem] = []
        self.job_badge: str = ""
        self.highlighted = False
        self.drop_state: bool | None = None  # True/False while a drag hovers this node
        w, h = geometry.size(info.kind, beside)
        self.width, self.height = w, h
        self._rect = QRectF(0, 0, w, h)
        self._bounds = self._rect.adjusted(-4, -12, 4, 8)
        self.setFlags(_NODE_FLAGS)
        self.setZValue(NODE_Z)
        self.setAcceptHoverEvents(True)
        self.info = info
        self._lines: list[str] | None = None

    # -- model --------------------------------------------------------------------
    def set_info(self, info: NodeInfo) -> None:
        """Take a new NodeInfo for this key; the card's text is laid out at the next paint."""
        self.info = info
        self._lines: list[str] | None = None
        self.update()

    def _layout_text(self) -> list[str]:
        """Elide the card's lines to its width (once per update, not per paint)."""
        info = self.info
        w = self._rect.width() - 16
        fm_title = metrics("auto" if info.auto_named else "title")
        fm = metrics("body")
        self._title = fm_title.elidedText(display_name(info), Qt.TextElideMode.ElideMiddle,
                                          w - 30)
        lines: list[str] = []
        if info.kind == "block-node":
            base = display_file(info.filename) if info.filename else ""
            if base:
                lines.append(fm.elidedText(base, Qt.TextElideMode.ElideMiddle, w))
            if not self.beside:
                bits = [human_size(info.virtual_size)]
                if info.cluster_size:
                    bits.append(f"{human_size(info.cluster_size)} cl.")
                lines.append("  ·  ".join(bits))
        elif info.kind == "block-job":
            st = info.info.get("status", "")
            lines.append(f"{info.driver or 'job'}  ·  {st}" if st else info.driver)
        else:
            lines.append("block backend" if info.name else "export / internal user")
        self._lines = lines
        return lines

    def hoverEnterEvent(self, event: Any) -> None:
        # tooltips are built when the pointer arrives, not for every node up front
        self.setToolTip(self._tooltip())
        super().hoverEnterEvent(event)

    def mouseMoveEvent(self, event: Any) -> None:
        super().mouseMoveEvent(event)
        scene = self.scene()
        moved = scene.selectedItems() if scene is not None else []
        for item in {self, *moved}:
            for e in getattr(item, "edges", ()):
                e.adjust()

    def _tooltip(self) -> str:
        i = self.info
        rows = [f"<b>{display_name(i)}</b>" + (" <i>(auto-named)</i>" if i.auto_named else "")]
        if i.kind == "block-node":
            rows.append(f"driver: {i.driver}")
            if i.filename:
                rows.append(f"file: {i.filename}")
            rows.append(f"virtual size: {human_size(i.virtual_size)}")
            if i.actual_size is not None:
                rows.append(f"allocated on host: {human_size(i.actual_size)}")
            if i.header_backing:
                rows.append(f"header backing: {i.header_backing}")
            rows.append("read-only" if i.read_only else "read-write")
        elif i.kind == "block-job":
            for k in ("type", "status", "offset", "len", "speed"):
                if k in i.info:
                    rows.append(f"{k}: {i.info[k]}")
        if self.job_badge:
            rows.append(f"in job {self.job_badge}")
        return "<br>".join(rows)

    def set_job_badge(self, text: str) -> None:
        if text != self.job_badge:
            self.job_badge = text
            self.update()

    def set_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self.update()

    # -- geometry -----------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return self._bounds

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self._rect, 6, 6)
        return path

    def top_port(self) -> QPointF:
        return self.scenePos() + QPointF(self._rect.width() / 2, 0)

    def bottom_port(self) -> QPointF:
        return self.scenePos() + QPointF(self._rect.width() / 2, self._rect.height())

    def right_port(self) -> QPointF:
        return self.scenePos() + QPointF(self._rect.width(), self._rect.height() / 2)

    def left_port(self) -> QPointF:
        return self.scenePos() + QPointF(0, self._rect.height() / 2)

    def has_backing_port(self) -> bool:
        """Format nodes (and filters) can take a backing link: they get a drag handle."""
        return self.info.kind == "block-node" and not self.beside and (
            self.info.driver not in PROTOCOL_DRIVERS)

    def backing_port_rect(self) -> QRectF:
        """The handle below the card to drag a backing link from (item coordinates)."""
        r = self._rect
        return QRectF(r.width() / 2 - 7, r.height() - 7, 14, 14)

    def adjust_edges(self) -> None:
        """Re-route this node's edges (after it moved)."""
        for e in self.edges:
            e.adjust()

    # -- painting -----------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        s = self.scheme
        r = self._rect
        header = s.color(header_purpose(self.info))
        selected = self.isSelected()
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.3:
            painter.fillRect(r, QColor(s.selected) if selected else header)
            return
        border = QPen(s.color("selected") if selected else s.color("card_border"),
                      2.4 if selected else 1.0)
        if self.drop_state is not None:
            border = QPen(s.color("drag_ok" if self.drop_state else "drag_refused"), 3.0)
        if self.highlighted:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(s.color("highlight"))
            painter.drawRoundedRect(r.adjusted(-4, -4, 4, 4), 9, 9)
        painter.setPen(border)
        painter.setBrush(s.color("card"))
        painter.drawRoundedRect(r, 6, 6)
        # header strip
        hh = 22.0
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(header)
        painter.drawRoundedRect(QRectF(r.x() + 0.5, r.y() + 0.5, r.width() - 1, hh), 5.5, 5.5)
        painter.drawRect(QRectF(r.x() + 0.5, r.y() + hh / 2, r.width() - 1, hh / 2 + 0.5))
        lines = self._lines if self._lines is not None else self._layout_text()
        # auto-named nodes (#block123): italic and dimmed, names QEMU made up
        painter.setPen(QColor(255, 255, 255, 170 if self.info.auto_named else 255))
        painter.setFont(font("auto" if self.info.auto_named else "title"))
        painter.drawText(QRectF(8, 0, r.width() - 16, hh),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self._title)
        if lod < 0.55:
            return
        # driver chip on the right of the header
        info = self.info
        painter.setFont(font("small"))
        chip = info.driver if info.kind != "block-backend" else "backend"
        if chip:
            fm = QFontMetricsF(font("small"))
            cw = fm.horizontalAdvance(chip) + 10
            crect = QRectF(r.width() - cw - 5, 4, cw, hh - 8)
            painter.setBrush(QColor(255, 255, 255, 60))
            painter.drawRoundedRect(crect, 6, 6)
            painter.setPen(QColor("#ffffff"))
            painter.drawText(crect, Qt.AlignmentFlag.AlignCenter, chip)
        painter.setPen(s.color("text"))
        painter.setFont(font("body"))
        y = hh + 3
        for line in lines:
            painter.drawText(QRectF(8, y, r.width() - 16, 16),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, line)
            painter.setPen(s.color("text_dim"))
            y += 16
        if info.kind == "block-node" and not self.beside:
            self._paint_allocation(painter, r, y + 2)
            pill_at = QPointF(r.width() - 8, hh + 3 + 16 + 1)
            if info.read_only:
                self._paint_pill(painter, pill_at, "read-only", s.color("read_only"), right=True)
            else:
                self._paint_pill(painter, pill_at, "read-write", s.color("drag_ok"), right=True)
            if self.has_backing_port():
                pr = self.backing_port_rect()
                painter.setPen(QPen(s.color("edge_backing"), 1.5))
                painter.setBrush(s.color("card"))
                painter.drawEllipse(pr)
        elif info.kind == "block-node" and info.read_only:
            self._paint_pill(painter, QPointF(r.width() - 8, r.height() - 20), "ro",
                             s.color("read_only"), right=True)
        if info.kind == "block-job":
            self._paint_job_progress(painter, r)
        if self.job_badge:
            self._paint_pill(painter, QPointF(r.width() - 6, -9), self.job_badge,
                             s.color("badge"), right=True, filled=True)

    def _paint_allocation(self, painter: QPainter, r: QRectF, y: float) -> None:
        info = self.info
        if not info.virtual_size or info.actual_size is None:
            return
        frac = max(0.0, min(1.0, info.actual_size / info.virtual_size))
        bar = QRectF(8, r.height() - 14, r.width() * 0.45, 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.scheme.color("alloc_bg"))
        painter.drawRoundedRect(bar, 3, 3)
        if frac > 0:
            painter.setBrush(self.scheme.color("alloc_fill"))
            painter.drawRoundedRect(QRectF(bar.x(), bar.y(), max(3.0, bar.width() * frac), 6),
                                    3, 3)
        painter.setPen(self.scheme.color("text_dim"))
        painter.setFont(font("small"))
        painter.drawText(QRectF(bar.right() + 6, bar.y() - 5, r.width() - bar.right() - 30, 16),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                         human_size(info.actual_size))

    def _paint_job_progress(self, painter: QPainter, r: QRectF) -> None:
        total = self.info.info.get("len") or 0
        done = self.info.info.get("offset") or 0
        frac = (done / total) if total else 0.0
        bar = QRectF(8, r.height() - 11, r.width() - 16, 5)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.scheme.color("alloc_bg"))
        painter.drawRoundedRect(bar, 2.5, 2.5)
        painter.setBrush(self.scheme.color("job_header"))
        painter.drawRoundedRect(QRectF(bar.x(), bar.y(), bar.width() * frac, 5), 2.5, 2.5)

    def _paint_pill(self, painter: QPainter, at: QPointF, text: str, color: QColor, *,
                    right: bool = False, filled: bool = False) -> None:
        f = font("badge")
        fm = QFontMetricsF(f)
        w = fm.horizontalAdvance(text) + 12
        x = at.x() - w if right else at.x()
        rect = QRectF(x, at.y(), w, 15)
        painter.setFont(f)
        if filled:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            painter.drawRoundedRect(rect, 7.5, 7.5)
            painter.setPen(QColor("#ffffff"))
        else:
            painter.setPen(QPen(color, 1.0))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, 7.5, 7.5)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)


class EdgeItem(QGraphicsPathItem):
    """A child link drawn by role: backing bold with an arrow, file thin and dashed,
    backend roots green, job links dotted orange; permissions on demand.

    Painted by Qt itself (a path item with a per-role pen; the arrow head is part of
    the path): thousands of edges repaint without a Python call each.
    """

    def __init__(self, info: EdgeInfo, parent_item: NodeItem, child_item: NodeItem,
                 scheme: Scheme) -> None:
        super().__init__()
        self.info = info
        self.src = parent_item
        self.dst = child_item
        self.scheme = scheme
        self.show_perms = False
        self.hover = False
        self._label: QGraphicsSimpleTextItem | None = None
        self._ends = ((0.0, 0.0), (0.0, 0.0))
        self._purpose: str | None = None
        self._shape: QPainterPath | None = None
        self._bounds = QRectF()
        self.setZValue(EDGE_Z)
        self.setAcceptHoverEvents(True)
        parent_item.edges.append(self)
        child_item.edges.append(self)
        self._apply_pen()
        self.adjust()
        if self.purpose() in ("edge_job", "edge_other"):
            self._update_label()

    @property
    def sideways(self) -> bool:
        return self.dst.beside and self.info.role == "file"

    def _tooltip(self) -> str:
        e = self.info
        perm = ", ".join(e.perm) or "none"
        shared = ", ".join(e.shared_perm) or "none"
        frozen = "<br><i>frozen by a running job</i>" if getattr(e, "frozen", False) else ""
        drag = ("<br>Drag the arrow's end onto another node to re-point it; "
                "drop it on empty canvas to detach.") if e.role == "backing" else ""
        return (f"<b>{e.parent}</b> —{e.role}→ <b>{e.child}</b><br>"
                f"perm: {perm}<br>shared: {shared}{frozen}{drag}")

    def set_info(self, info: EdgeInfo) -> None:
        self.info = info
        self._apply_pen()
        self._update_label()

    def set_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self._apply_pen()
        self._update_label()

    def set_show_perms(self, on: bool) -> None:
        self.show_perms = on
        self._update_label()

    def _apply_pen(self) -> None:
        self.setPen(_edge_pen(self.scheme, self.purpose(), self.hover,
                              getattr(self.info, "frozen", False)))

    def label_text(self) -> str:
        purpose = self.purpose()
        label = "" if purpose in ("edge_backing", "edge_file", "edge_root") else self.info.role
        if self.show_perms:
            perm = "/".join(_short_perm(p) for p in self.info.perm) or "-"
            shared = "/".join(_short_perm(p) for p in self.info.shared_perm) or "-"
            label = (f"{self.info.role}  " if label else "") + f"perm {perm} · shared {shared}"
        return label

    def _update_label(self) -> None:
        text = self.label_text()
        if not text:
            if self._label is not None:
                self._label.setVisible(False)
            return
        if self._label is None:
            self._label = QGraphicsSimpleTextItem(self)
            self._label.setFont(font("small"))
        self._label.setText(text)
        self._label.setBrush(self.scheme.color("text"))
        self._label.setVisible(True)
        self._place_label()

    def _place_label(self) -> None:
        if self._label is None:
            return
        (ax, ay), (bx, by) = self._ends
        r = self._label.boundingRect()
        self._label.setPos((ax + bx) / 2 - r.width() / 2, (ay + by) / 2 - r.height() / 2)

    def detach(self) -> None:
        """Forget the endpoints (before removal from the scene)."""
        for item in (self.src, self.dst):
            if self in item.edges:
                item.edges.remove(self)

    def purpose(self) -> str:
        if self._purpose is None:
            self._purpose = self._compute_purpose()
        return self._purpose

    def _compute_purpose(self) -> str:
        role = self.info.role
        if self.src.info.kind == "block-job":
            return "edge_job"
        if role == "backing":
            return "edge_backing"
        if role == "file":
            return "edge_file"
        if role == "root":
            return "edge_root"
        return "edge_other"

    def endpoints(self) -> tuple[QPointF, QPointF]:
        return QPointF(*self._ends[0]), QPointF(*self._ends[1])

    def adjust(self) -> None:
        """Re-route after an endpoint moved (plain float arithmetic: this runs per edge)."""
        src, dst = self.src, self.dst
        sp, dp = src.pos(), dst.pos()
        if self.sideways:
            ax, ay = sp.x() + src.width, sp.y() + src.height / 2
            bx, by = dp.x(), dp.y() + dst.height / 2
        else:
            ax, ay = sp.x() + src.width / 2, sp.y() + src.height
            bx, by = dp.x() + dst.width / 2, dp.y()
        self._ends = ((ax, ay), (bx, by))
        path = QPainterPath(QPointF(ax, ay))
        if self.sideways:
            path.lineTo(bx, by)
            top, bottom = min(ay, by), max(ay, by)
        else:
            dy = max(30.0, abs(by - ay) / 2)
            path.cubicTo(ax, ay + dy, bx, by - dy, bx, by)
            # the arrow head, drawn with the same pen
            path.moveTo(bx - 5, by - 8)
            path.lineTo(bx, by)
            path.lineTo(bx + 5, by - 8)
            top, bottom = min(ay, by - dy, by - 8), max(ay + dy, by)
        self.prepareGeometryChange()
        # the control points bound the curve; the margin covers the pen and the
        # 10-unit hover band of shape()
        left, right = min(ax, bx) - 5, max(ax, bx) + 5
        self._bounds = QRectF(left - _EDGE_MARGIN, top - _EDGE_MARGIN,
                              right - left + 2 * _EDGE_MARGIN, bottom - top + 2 * _EDGE_MARGIN)
        self.setPath(path)
        self._shape: QPainterPath | None = None
        self._place_label()

    def boundingRect(self) -> QRectF:
        """From the curve's control points, computed with the path: Qt's own would
        build the hover band (:meth:`shape`) of every edge just to bound it."""
        return self._bounds

    def shape(self) -> QPainterPath:
        """A 10-unit band along the curve (Qt's default would include the area
        between the curve and its chord): hover, tooltips and grabbing use it."""
        if self._shape is None:
            stroker = QPainterPathStroker()
            stroker.setWidth(10)
            self._shape = stroker.createStroke(self.path())
        return self._shape

    def point_at(self, t: float) -> QPointF:
        """A point along the link's curve (0 = parent end, 1 = child end)."""
        (ax, ay), (bx, by) = self._ends
        if self.sideways:
            return QPointF(ax + (bx - ax) * t, ay + (by - ay) * t)
        dy = max(30.0, abs(by - ay) / 2)
        u = 1 - t
        x = u ** 3 * ax + 3 * u * u * t * ax + 3 * u * t * t * bx + t ** 3 * bx
        y = (u ** 3 * ay + 3 * u * u * t * (ay + dy) + 3 * u * t * t * (by - dy)
             + t ** 3 * by)
        return QPointF(x, y)

    def child_end(self) -> QPointF:
        return QPointF(*self._ends[1])

    def hoverEnterEvent(self, event: Any) -> None:
        self.hover = True
        self.setToolTip(self._tooltip())
        self._apply_pen()

    def hoverLeaveEvent(self, event: Any) -> None:
        self.hover = False
        self._apply_pen()


_PENS: dict[tuple[str, str, bool, bool], QPen] = {}


#: half the widest edge pen (hovered backing: 4.1) or of the hover band (10), rounded up
_EDGE_MARGIN = 6.0


def _edge_pen(scheme: Scheme, purpose: str, hover: bool, frozen: bool) -> QPen:
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


_PERM_SHORT = {"consistent-read": "r", "write": "w", "write-unchanged": "wu", "resize": "rs",
               "graph-mod": "gm"}


def _short_perm(p: str) -> str:
    return _PERM_SHORT.get(p, p)


class DragEdgeItem(QGraphicsItem):
    """The edge that follows the cursor while a backing link is dragged.

    Coloured green when the drop would be accepted and red when refused, with the
    reason written beside the cursor (the same text the status bar shows).
    """

    def __init__(self, start: QPointF, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme
        self.start = start
        self.end = start
        self.ok: bool | None = None
        self.reason = ""
        self._bounds = QRectF()
        self.setZValue(DRAG_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self._recompute()

    def set_end(self, end: QPointF, ok: bool | None, reason: str) -> None:
        self.prepareGeometryChange()
        self.end, self.ok, self.reason = end, ok, reason
        self._recompute()
        self.update()

    def _path(self) -> QPainterPath:
        a, b = self.start, self.end
        path = QPainterPath(a)
        dy = max(30.0, abs(b.y() - a.y()) / 2)
        path.cubicTo(QPointF(a.x(), a.y() + dy), QPointF(b.x(), b.y() - dy), b)
        return path

    def _recompute(self) -> None:
        r = self._path().boundingRect().adjusted(-12, -12, 12, 12)
        self._bounds = r.united(QRectF(self.end.x(), self.end.y(), 460, 60))

    def boundingRect(self) -> QRectF:
        return self._bounds

    def color(self) -> QColor:
        if self.ok is None:
            return self.scheme.color("edge_backing")
        return self.scheme.color("drag_ok" if self.ok else "drag_refused")

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        color = self.color()
        pen = QPen(color, 3.0)
        pen.setStyle(Qt.PenStyle.DashLine if self.ok is None else Qt.PenStyle.SolidLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._path())
        painter.setBrush(QBrush(color))
        painter.drawEllipse(self.end, 5, 5)
        if self.reason:
            f = font("body")
            fm = QFontMetricsF(f)
            text = self.reason if len(self.reason) < 90 else self.reason[:87] + "…"
            w = fm.horizontalAdvance(text) + 16
            rect = QRectF(self.end.x() + 14, self.end.y() + 10, w, 22)
            painter.setPen(QPen(color, 1.5))
            painter.setBrush(self.scheme.color("card"))
            painter.drawRoundedRect(rect, 5, 5)
            painter.setPen(self.scheme.color("text"))
            painter.setFont(f)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

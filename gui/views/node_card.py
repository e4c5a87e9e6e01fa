"""A node's card: what it shows, where it sits, and how it is painted.

Cards are projections of :class:`~engine.graph.snapshot.NodeInfo`: the scene
creates, updates and removes them from snapshot diffs, and nothing else changes
their content. Painting keeps a level of detail: zoomed far out a card is one
filled rectangle (drawn by the card layer), and the text a card shows is laid out
once per update, not per paint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPen

from engine.graph.drivers import BACKING_DRIVERS, PASS_THROUGH_DRIVERS, PROTOCOL_DRIVERS
from gui.views.layout import Geometry
from gui.views.lens import FOLDED
from gui.views.levels import CARD_DETAIL
from gui.views.text import display_file, display_name, font, human_size, metrics

if TYPE_CHECKING:
    from engine.graph.snapshot import NodeInfo
    from gui.views.palette import Scheme


class CardHost(Protocol):
    """What a card tells the layer that paints it (the card layer)."""

    def card_changed(self, card: NodeCard) -> None: ...

    def card_placed(self, card: NodeCard) -> None: ...


class Attached(Protocol):
    """A link at a card: drawn again when the card moves."""

    def adjust(self) -> None: ...


def header_purpose(info: NodeInfo) -> str:
    """Which scheme colour the card's header strip uses: protocol nodes grey, nodes
    without data of their own (filters, quorum) purple, formats blue."""
    if info.kind == FOLDED:
        return "folded_header"
    if info.kind == "block-backend":
        return "backend_header"
    if info.kind == "block-job":
        return "job_header"
    if info.driver in PROTOCOL_DRIVERS:
        return "protocol_header"
    if info.driver in PASS_THROUGH_DRIVERS:
        return "filter_header"
    return "format_header"


def chip_text(info: NodeInfo) -> str:
    """The chip on the right of a card's header: its driver, or what kind it is."""
    return info.driver if info.kind != "block-backend" else "backend"


def chip_width(info: NodeInfo) -> float:
    """Room the header's chip takes, its right margin included (0: no chip)."""
    chip = chip_text(info)
    return metrics("small").horizontalAdvance(chip) + 15 if chip else 0.0


class NodeCard:
    """A card for one node: name, driver, file, size, read-only, allocation, job badge.

    Not a graphics item: a plain object with its scene rectangle (``px``, ``py``,
    ``width``, ``height``) and its state (selected, highlighted, drop state, job
    badge). The scene's :class:`~gui.views.cards.CardLayer` paints every card in
    one pass and answers hit tests; the canvas turns the mouse into selection and
    moves. A Qt item per card would cost a C++ object, a Python wrapper and
    Qt's per-item bookkeeping for each of thousands of nodes, for behaviour (select,
    move, tooltip) that takes a few lines here. :meth:`repaint` asks the layer to
    draw the card again after its state changed.
    """

    __slots__ = (
        "_lines",
        "_title",
        "beside",
        "drop_state",
        "edges",
        "geometry",
        "height",
        "highlighted",
        "info",
        "job_badge",
        "key",
        "layer",
        "purpose",
        "px",
        "py",
        "scheme",
        "selected",
        "width",
    )

    def __init__(self, info: NodeInfo, scheme: Scheme, geometry: Geometry, beside: bool) -> None:
        self.width, self.height = geometry.size(info.kind, beside)
        self.px = self.py = 0.0
        self.key = info.key
        self.info = info
        self.purpose = header_purpose(info)
        self.scheme = scheme
        self.geometry = geometry
        self.beside = beside
        self.edges: list[Attached] = []
        self.job_badge = ""
        self.highlighted = False
        self.selected = False
        self.drop_state: bool | None = None  # True/False while a drag hovers this node
        self.layer: CardHost | None = None  # set when the scene adds the card
        self._lines: list[str] | None = None
        self._title = ""

    # -- model --------------------------------------------------------------------
    def set_info(self, info: NodeInfo) -> None:
        """Take a new NodeInfo for this key; the card's text is laid out at the next paint."""
        self.info = info
        self.purpose = header_purpose(info)
        self._lines = None
        self.repaint()

    def repaint(self) -> None:
        """Have the card drawn again (after its state changed)."""
        if self.layer is not None:
            self.layer.card_changed(self)

    def _layout_text(self) -> list[str]:
        """Elide the card's lines to its width (once per update, not per paint)."""
        info = self.info
        w = self.width - 16
        fm_title = metrics("auto" if info.auto_named else "title")
        fm = metrics("body")
        # the title ends where the driver chip begins (a long name never runs under it)
        self._title = fm_title.elidedText(display_name(info), Qt.TextElideMode.ElideMiddle,
                                          self.width - 16 - chip_width(info) - 4)
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
        elif info.kind == FOLDED:
            lines.append(f"{human_size(info.actual_size)} allocated")
            lines.append(fm.elidedText(f"top: {display_file(info.filename)}",
                                       Qt.TextElideMode.ElideMiddle, w))
        elif info.kind == "block-job":
            st = info.info.get("status", "")
            lines.append(f"{info.driver or 'job'}  ·  {st}" if st else info.driver)
        else:
            lines.append("block backend" if info.name else "export / internal user")
        self._lines = lines
        return lines

    def tooltip(self) -> str:
        """Rich text for the tooltip (built when the pointer arrives, not up front)."""
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
        elif i.kind == FOLDED:
            layers = list(i.info.get("layers", ()))
            rows.append(f"{len(layers)} layers folded: {layers[0]} … {layers[-1]}")
            rows.append(f"allocated on host: {human_size(i.actual_size)}")
            rows.append("<i>double-click to unfold</i>")
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
            self.repaint()

    # -- geometry -----------------------------------------------------------------
    def place(self, x: float, y: float) -> None:
        """Move the card's top-left corner to (x, y) in scene coordinates (the layer
        hears of it, so links are routed around the card where it now is)."""
        self.px, self.py = x, y
        if self.layer is not None:
            self.layer.card_placed(self)

    def rect_tuple(self) -> tuple[float, float, float, float]:
        """The card in scene coordinates as (x, y, width, height), for the layout."""
        return (self.px, self.py, self.width, self.height)

    def rect(self) -> QRectF:
        """The card in its own coordinates (top-left at 0, 0)."""
        return QRectF(0.0, 0.0, self.width, self.height)

    def scene_rect(self) -> QRectF:
        return QRectF(self.px, self.py, self.width, self.height)

    def contains(self, x: float, y: float) -> bool:
        """Whether the scene point (x, y) lies on the card."""
        return (self.px <= x <= self.px + self.width
                and self.py <= y <= self.py + self.height)

    def top_port(self) -> QPointF:
        return QPointF(self.px + self.width / 2, self.py)

    def bottom_port(self) -> QPointF:
        return QPointF(self.px + self.width / 2, self.py + self.height)

    def right_port(self) -> QPointF:
        return QPointF(self.px + self.width, self.py + self.height / 2)

    def left_port(self) -> QPointF:
        return QPointF(self.px, self.py + self.height / 2)

    def has_backing_port(self) -> bool:
        """Nodes whose driver takes a backing link (qcow2 and the other COW formats, as
        QEMU's rules say) get a drag handle; raw, filters and protocols do not."""
        return self.info.kind == "block-node" and not self.beside and (
            self.info.driver in BACKING_DRIVERS)

    def backing_port_rect(self) -> QRectF:
        """The handle below the card to drag a backing link from (scene coordinates)."""
        return QRectF(self.px + self.width / 2 - 7, self.py + self.height - 7, 14, 14)

    def adjust_edges(self) -> None:
        """Re-route this node's edges (after it moved)."""
        for e in self.edges:
            e.adjust()

    # -- painting -----------------------------------------------------------------
    # painting, top to bottom of the card: each statement draws one thing, in the order
    # they overlap
    def paint_card(self, painter: QPainter, lod: float) -> None:  # noqa: PLR0915
        """Draw the card in its own coordinates at zoom ``lod`` (called by the
        CardLayer, above its plain-rectangle detail level)."""
        s = self.scheme
        r = self.rect()
        header = s.color(self.purpose)
        selected = self.selected
        border = QPen(s.color("selected") if selected else s.color("card_border"),
                      2.4 if selected else 1.0)
        if self.drop_state is not None:
            border = QPen(s.color("drag_ok" if self.drop_state else "drag_refused"), 3.0)
        if self.info.kind == FOLDED:  # a stack of cards: the layers folded inside
            painter.setPen(QPen(s.color("card_border"), 1.0))
            painter.setBrush(s.color("card"))
            for d in (8.0, 4.0):
                painter.drawRoundedRect(r.translated(d, d), 6, 6)
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
        if lod < CARD_DETAIL:
            return
        # driver chip on the right of the header
        info = self.info
        painter.setFont(font("small"))
        chip = chip_text(info)
        if chip:
            cw = chip_width(info) - 5
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
                pr = self.backing_port_rect().translated(-self.px, -self.py)
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

"""Which layer holds which data: one bar per layer of a chain, plus the guest view.

Each layer's bar spans its virtual size: data ranges in the layer's colour, zero ranges
hatched, unallocated ranges empty. The last bar, "guest view", colours every range by
the layer that serves it (like ``qemu-img map``): that is where a read really lands.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.offline.inspect import ChainReport

PALETTE = ["#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41", "#3949ab"]
ROW_H, LABEL_W, PAD = 26, 130, 6


def layer_colour(depth: int) -> QColor:
    return QColor(PALETTE[depth % len(PALETTE)])


class LayerBars(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: ChainReport | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_report(self, report: ChainReport | None) -> None:
        self.report = report
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        rows = len(self.report.layers) + 1 if self.report else 1
        return QSize(420, rows * (ROW_H + PAD) + 24)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.fillRect(self.rect(), QColor("#ffffff"))
        r = self.report
        if r is None or not r.layers:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no image")
            return
        font = QFont()
        font.setPointSizeF(8.5)
        p.setFont(font)
        size = max(layer.virtual_size for layer in r.layers) or 1
        width = max(10, self.width() - LABEL_W - 2 * PAD)

        def x(offset: int) -> float:
            return LABEL_W + PAD + offset * width / size

        y = PAD
        for depth, layer in enumerate(r.layers):
            colour = layer_colour(depth)
            p.setPen(QColor("#1f2933"))
            p.drawText(QRectF(PAD, y, LABEL_W - PAD, ROW_H),
                       Qt.AlignmentFlag.AlignVCenter, layer.name)
            bar = QRectF(x(0), y + 3, x(layer.virtual_size) - x(0), ROW_H - 6)
            p.fillRect(bar, QColor("#ffffff"))
            for ext in layer.extents:
                rect = QRectF(x(ext.start), bar.top(), max(1.0, x(ext.end) - x(ext.start)),
                              bar.height())
                if ext.state == "data":
                    p.fillRect(rect, colour)
                elif ext.state == "zero":
                    p.fillRect(rect, QBrush(colour, Qt.BrushStyle.BDiagPattern))
            p.setPen(QPen(QColor("#90a4ae"), 1))
            p.drawRect(bar)
            y += ROW_H + PAD
        p.setPen(QColor("#1f2933"))
        bold = QFont(font)
        bold.setBold(True)
        p.setFont(bold)
        p.drawText(QRectF(PAD, y, LABEL_W - PAD, ROW_H), Qt.AlignmentFlag.AlignVCenter,
                   "guest view")
        p.setFont(font)
        bar = QRectF(x(0), y + 3, x(r.layers[0].virtual_size) - x(0), ROW_H - 6)
        for e in r.provider_map:
            if not e["present"]:
                continue
            rect = QRectF(x(e["start"]), bar.top(),
                          max(1.0, x(e["start"] + e["length"]) - x(e["start"])), bar.height())
            colour = layer_colour(e["depth"])
            p.fillRect(rect, colour if e["data"] else QBrush(colour, Qt.BrushStyle.BDiagPattern))
        p.setPen(QPen(QColor("#37474f"), 1.5))
        p.drawRect(bar)
        if r.broken is not None:
            p.setPen(QColor("#c62828"))
            p.drawText(QRectF(x(0), y + ROW_H, width, 18), Qt.AlignmentFlag.AlignLeft,
                       "chain broken: empty ranges come from a missing file")
        p.end()

"""Pictures of the scene that stay readable: SVG, PNG (paged when big), PDF (paged).

Loaded by :func:`gui.views.export.export` only when a picture is drawn (it needs Qt's
painting).

A picture of a big graph squeezed onto one page is a grey smear: card text must
come out at a size a person can read. So:

* **SVG** is vector: any viewer zooms in to read it; written at 100 %.
* **PNG** is written at 100 % when it fits in :data:`MAX_PIXELS`, else at the
  largest scale that fits but never below :data:`LEGIBLE_SCALE`; a graph too big
  even then is written as pages (``NAME-1.png``, ``NAME-2.png``, … each a tile at
  100 %) and ``NAME.png`` holds an overview of the whole with the pages outlined
  and numbered.
* **PDF** is paged: A4 landscape pages, each a tile of the picture at a scale
  where card text is at least :data:`LEGIBLE_SCALE` of its size on screen, numbered
  by row and column; a graph that fits on one page at a larger scale gets one page.

The page's shape is what :func:`gui.views.export.page_aspect` reports, so ``blockgraph
render`` lays the graph out for the page it prints on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMarginsF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen
from PySide6.QtSvg import QSvgGenerator

if TYPE_CHECKING:
    from gui.views.scene import GraphScene

#: below this scale card text (10 pt on screen) is too small to read
LEGIBLE_SCALE = 0.6
#: the biggest single PNG written (pixels); bigger pictures are paged
MAX_PIXELS = 40_000_000
#: a PNG page (pixels a side) when a picture is paged
PNG_PAGE = 4096
#: the overview of a paged PNG (pixels on its longer side)
OVERVIEW_SIDE = 2400


def write_svg(scene: GraphScene, path: str | os.PathLike[str]) -> list[Path]:
    rect = scene.graph_rect()
    gen = QSvgGenerator()
    gen.setFileName(os.fspath(path))
    gen.setSize(QSize(int(rect.width()), int(rect.height())))
    gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    gen.setTitle("blockgraph")
    gen.setDescription("QEMU block graph drawn by blockgraph")
    painter = QPainter(gen)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    painter.end()
    return [Path(path)]


def _image(scene: GraphScene, source: QRectF, scale: float) -> QImage:
    img = QImage(max(1, math.ceil(source.width() * scale)),
                 max(1, math.ceil(source.height() * scale)), QImage.Format.Format_ARGB32)
    img.fill(scene.backgroundBrush().color())
    painter = QPainter(img)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    scene.render(painter, QRectF(0, 0, img.width(), img.height()), source,
                 Qt.AspectRatioMode.IgnoreAspectRatio)
    painter.end()
    return img


def _save(img: QImage, path: Path) -> None:
    # PySide6's stubs ask for bytes; this binding takes the format as str (bytes fail)
    if not img.save(os.fspath(path), "PNG"):  # type: ignore[call-overload]
        raise OSError(f"cannot write {path}")


def tiles(rect: QRectF, tile_w: float, tile_h: float) -> list[QRectF]:
    """``rect`` cut into tiles of at most ``tile_w`` × ``tile_h``, row by row."""
    cols = max(1, math.ceil(rect.width() / tile_w))
    rows = max(1, math.ceil(rect.height() / tile_h))
    w, h = rect.width() / cols, rect.height() / rows
    return [QRectF(rect.x() + c * w, rect.y() + r * h, w, h)
            for r in range(rows) for c in range(cols)]


def png_scale(rect: QRectF) -> float:
    """The scale a single PNG of ``rect`` is written at (0 when it must be paged)."""
    pixels = rect.width() * rect.height()
    scale = min(1.0, math.sqrt(MAX_PIXELS / max(pixels, 1.0)))
    return scale if scale >= LEGIBLE_SCALE else 0.0


def write_png(scene: GraphScene, path: str | os.PathLike[str]) -> list[Path]:
    """One PNG at a legible scale, or pages and an overview; returns the files."""
    rect = scene.graph_rect()
    target = Path(path)
    scale = png_scale(rect)
    if scale:
        _save(_image(scene, rect, scale), target)
        return [target]
    pages = tiles(rect, PNG_PAGE, PNG_PAGE)
    written = []
    for i, tile in enumerate(pages, 1):
        page = target.with_name(f"{target.stem}-{i}{target.suffix}")
        _save(_image(scene, tile, 1.0), page)
        written.append(page)
    overview_scale = OVERVIEW_SIDE / max(rect.width(), rect.height())
    img = _image(scene, rect, overview_scale)
    painter = QPainter(img)
    painter.setPen(QPen(QColor("#d03b3b"), 2))
    f = QFont()
    f.setPointSizeF(14)
    f.setBold(True)
    painter.setFont(f)
    for i, tile in enumerate(pages, 1):
        r = QRectF((tile.x() - rect.x()) * overview_scale, (tile.y() - rect.y()) * overview_scale,
                   tile.width() * overview_scale, tile.height() * overview_scale)
        painter.drawRect(r)
        painter.drawText(r.adjusted(6, 4, -6, -4), Qt.AlignmentFlag.AlignLeft, str(i))
    painter.end()
    _save(img, target)
    return [target, *written]


def write_pdf(scene: GraphScene, path: str | os.PathLike[str]) -> list[Path]:
    """A4 landscape pages at a legible scale, numbered by row and column."""
    rect = scene.graph_rect()
    writer = QPdfWriter(os.fspath(path))
    writer.setTitle("blockgraph")
    writer.setCreator("blockgraph")
    writer.setResolution(150)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Landscape,
                                     QMarginsF(10, 10, 10, 14), QPageLayout.Unit.Millimeter))
    painter = QPainter(writer)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    page = QRectF(writer.pageLayout().paintRectPixels(writer.resolution()))
    page = QRectF(0, 0, page.width(), page.height())
    # one scene unit is one screen pixel (1/96 in); at scale s it is s/96 in on paper
    px = writer.resolution() / 96.0
    fit = min(page.width() / rect.width(), page.height() / rect.height()) / px
    scale = min(1.0, fit) if fit >= LEGIBLE_SCALE else LEGIBLE_SCALE
    parts = tiles(rect, page.width() / (scale * px), page.height() / (scale * px))
    cols = max(1, math.ceil(rect.width() * scale * px / page.width()))
    for i, tile in enumerate(parts):
        if i:
            writer.newPage()
        target = QRectF(0, 0, tile.width() * scale * px, tile.height() * scale * px)
        scene.render(painter, target, tile, Qt.AspectRatioMode.KeepAspectRatio)
        if len(parts) > 1:
            painter.setPen(QColor("#7a8291"))
            painter.drawText(QRectF(0, page.height() - 4, page.width(), 40),
                             Qt.AlignmentFlag.AlignRight,
                             f"page {i + 1} of {len(parts)} — row {i // cols + 1}, "
                             f"column {i % cols + 1}")
    painter.end()
    return [Path(path)]

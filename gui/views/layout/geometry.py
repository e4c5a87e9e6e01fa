"""Sizes, gaps and the small geometric types every layout module shares.

Qt-free: rectangles are ``(x, y, width, height)`` tuples in scene units with the
top-left corner first, points ``(x, y)``, so the layout runs (and is tested) without
a display and ``blockgraph render -o FILE.json`` writes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # x, y, width, height


@dataclass(frozen=True, slots=True)
class Geometry:
    """Sizes of the cards and the gaps between them, in scene units."""

    node_w: float = 220.0
    node_h: float = 96.0
    beside_w: float = 170.0
    beside_h: float = 60.0
    small_h: float = 52.0  # block backends and jobs
    col_gap: float = 48.0
    row_gap: float = 64.0
    beside_gap: float = 28.0
    #: width a link passing through a row reserves there, and the gap beside it
    lane_w: float = 12.0
    lane_gap: float = 12.0
    #: vertical distance between two links running side by side between rows
    track_gap: float = 9.0
    #: horizontal distance between two links leaving or entering one card
    port_gap: float = 12.0
    #: space between packed components, and a VM frame's margin and label strip
    component_gap: float = 72.0
    frame_pad: float = 24.0
    frame_label_h: float = 26.0

    @property
    def row_h(self) -> float:
        """A row's pitch when the channel below it holds a single track."""
        return self.node_h + self.row_gap

    def size(self, kind: str, beside: bool) -> tuple[float, float]:
        """Width and height of the card for a node of ``kind``."""
        if beside:
            return self.beside_w, self.beside_h
        if kind in ("block-backend", "block-job"):
            return self.node_w, self.small_h
        return self.node_w, self.node_h


DEFAULT_GEOMETRY = Geometry()


def overlap(a: Rect, b: Rect) -> bool:
    """Whether two rectangles share interior points (touching edges do not count)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def union(rects: list[Rect]) -> Rect:
    """The smallest rectangle holding every rectangle of a non-empty list."""
    left = min(r[0] for r in rects)
    top = min(r[1] for r in rects)
    right = max(r[0] + r[2] for r in rects)
    bottom = max(r[1] + r[3] for r in rects)
    return left, top, right - left, bottom - top


def simplify(pts: list[Point]) -> list[Point]:
    """A path without repeated points or the middle one of three on a straight line."""
    out: list[Point] = []
    for p in pts:
        if out and abs(out[-1][0] - p[0]) < 0.01 and abs(out[-1][1] - p[1]) < 0.01:
            continue
        if len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if (abs(ax - bx) < 0.01 and abs(bx - p[0]) < 0.01) or (
                    abs(ay - by) < 0.01 and abs(by - p[1]) < 0.01):
                out[-1] = p
                continue
        out.append(p)
    return out

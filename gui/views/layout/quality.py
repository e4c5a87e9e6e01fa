"""How good a drawing is: overlapping cards, links through cards, crossings, shape.

The same measures for our drawings and for Graphviz ``dot``'s (its ``-Tplain``
output, parsed by the layout benchmark), so the two can be set side by side:

* :func:`overlaps` — pairs of cards that share interior points;
* :func:`links_through_cards` — links whose drawn line enters a card that is not
  one of its two ends;
* :func:`crossings` — points where two links' lines cross, not counting those on
  or at a card both links touch (links that share a node meet there by design);
* :func:`aspect` — width / height of the bounding box of the cards.

Lines are polylines of any direction (``dot`` draws splines: sample them first).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

from gui.views.layout.geometry import Point, Rect

EdgeKey = tuple[str, str, str]
_CELL = 200.0


def overlaps(rects: Mapping[str, Rect]) -> list[tuple[str, str]]:
    """Pairs of cards sharing interior points (a sweep over x)."""
    items = sorted(rects.items(), key=lambda kv: kv[1][0])
    out: list[tuple[str, str]] = []
    active: list[tuple[str, Rect]] = []
    for k, r in items:
        x = r[0]
        active = [(ak, ar) for ak, ar in active if ar[0] + ar[2] > x]
        for ak, ar in active:
            if ar[1] < r[1] + r[3] and r[1] < ar[1] + ar[3] and x < ar[0] + ar[2]:
                out.append((ak, k))
        active.append((k, r))
    return out


def _cells(x0: float, y0: float, x1: float, y1: float) -> Iterable[tuple[int, int]]:
    for i in range(math.floor(min(x0, x1) / _CELL), math.floor(max(x0, x1) / _CELL) + 1):
        for j in range(math.floor(min(y0, y1) / _CELL), math.floor(max(y0, y1) / _CELL) + 1):
            yield i, j


def segment_enters(a: Point, b: Point, r: Rect, inset: float = 0.5) -> bool:
    """Whether segment a–b passes through the interior of ``r`` shrunk by ``inset``
    (a line along a card's border, or ending on it, does not enter it)."""
    x0, y0 = r[0] + inset, r[1] + inset
    x1, y1 = r[0] + r[2] - inset, r[1] + r[3] - inset
    if x1 <= x0 or y1 <= y0:
        return False
    # Liang–Barsky clipping of the segment against the rectangle
    dx, dy = b[0] - a[0], b[1] - a[1]
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q <= 0:
                return False
            continue
        t = q / p
        if p < 0:
            if t > t1:
                return False
            t0 = max(t0, t)
        else:
            if t < t0:
                return False
            t1 = min(t1, t)
    return t1 - t0 > 1e-9


def links_through_cards(rects: Mapping[str, Rect],
                        paths: Mapping[EdgeKey, Sequence[Point]]) -> list[tuple[EdgeKey, str]]:
    """(link, card) for every link whose line enters a card it does not connect."""
    grid: dict[tuple[int, int], list[str]] = {}
    for k, (x, y, w, h) in rects.items():
        for c in _cells(x, y, x + w, y + h):
            grid.setdefault(c, []).append(k)
    out: list[tuple[EdgeKey, str]] = []
    for ek, pts in paths.items():
        ends = (ek[0], ek[2])
        hit: set[str] = set()
        for a, b in itertools.pairwise(pts):
            for c in _cells(a[0], a[1], b[0], b[1]):
                for k in grid.get(c, ()):
                    if k not in ends and k not in hit and segment_enters(a, b, rects[k]):
                        hit.add(k)
        out.extend((ek, k) for k in sorted(hit))
    return out


def _cross(a: Point, b: Point, c: Point, d: Point) -> Point | None:
    """The point where segments a–b and c–d properly cross, if they do."""
    r = (b[0] - a[0], b[1] - a[1])
    s = (d[0] - c[0], d[1] - c[1])
    den = r[0] * s[1] - r[1] * s[0]
    if abs(den) < 1e-12:
        return None
    qp = (c[0] - a[0], c[1] - a[1])
    t = (qp[0] * s[1] - qp[1] * s[0]) / den
    u = (qp[0] * r[1] - qp[1] * r[0]) / den
    if 1e-9 < t < 1 - 1e-9 and 1e-9 < u < 1 - 1e-9:
        return a[0] + t * r[0], a[1] + t * r[1]
    return None


def crossings(paths: Mapping[EdgeKey, Sequence[Point]],
              rects: Mapping[str, Rect] | None = None, near: float = 4.0) -> int:
    """Points where two links' lines cross. Two links that share a node are not
    counted where they cross on or within ``near`` of that node's card."""
    segs: list[tuple[int, Point, Point]] = []
    keys = list(paths)
    for i, ek in enumerate(keys):
        pts = paths[ek]
        segs.extend((i, a, b) for a, b in itertools.pairwise(pts))
    grid: dict[tuple[int, int], list[int]] = {}
    for s, (_i, a, b) in enumerate(segs):
        for cell in _cells(a[0], a[1], b[0], b[1]):
            grid.setdefault(cell, []).append(s)
    found: set[tuple[int, int]] = set()
    count = 0
    for bucket in grid.values():
        for x, s in enumerate(bucket):
            i, a, b = segs[s]
            for t in bucket[x + 1:]:
                j, c, d = segs[t]
                if i == j or (s, t) in found:
                    continue
                p = _cross(a, b, c, d)
                if p is None:
                    continue
                found.add((s, t))
                shared = set(keys[i][::2]) & set(keys[j][::2])
                if rects is not None and any(_near(p, rects[k], near) for k in shared
                                             if k in rects):
                    continue
                count += 1
    return count


def _near(p: Point, r: Rect, d: float) -> bool:
    return r[0] - d <= p[0] <= r[0] + r[2] + d and r[1] - d <= p[1] <= r[1] + r[3] + d


def aspect(rects: Mapping[str, Rect]) -> float:
    """Width / height of the cards' bounding box (1.0 for an empty drawing)."""
    if not rects:
        return 1.0
    left = min(r[0] for r in rects.values())
    top = min(r[1] for r in rects.values())
    right = max(r[0] + r[2] for r in rects.values())
    bottom = max(r[1] + r[3] for r in rects.values())
    return (right - left) / max(bottom - top, 1e-9)


def sample_cubic(points: Sequence[Point], steps: int = 8) -> list[Point]:
    """A B-spline given as cubic Bézier pieces (1 + 3k control points, as Graphviz
    writes them) as a polyline of ``steps`` points a piece."""
    out: list[Point] = [points[0]]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        for s in range(1, steps + 1):
            t = s / steps
            u = 1 - t
            out.append((u ** 3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0]
                        + t ** 3 * p3[0],
                        u ** 3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1]
                        + t ** 3 * p3[1]))
    return out

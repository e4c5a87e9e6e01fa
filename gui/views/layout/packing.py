"""Packing laid-out parts into one picture whose shape follows the viewport's.

A skyline packer: parts go largest first, each to the lowest free place along the
skyline of what is already placed (leftmost on ties), inside a width chosen so that
the whole picture comes out close to the requested aspect ratio; a few widths are
tried and the best kept. Rows of parts, biggest at the top left, read like a grid.

Why not a packing library: ``rectangle-packer`` (rpack, maintained) minimises the
bounding box's area, not its shape — unconstrained it lines 200 chains up in one
row, and with a maximum width it returns narrow columns — and it takes 70 ms for 200
parts and 1.5 s for 1,000 on this kind of machine, where a whole layout of 5,000
nodes must take well under a second. ``rectpack`` (pure Python, unmaintained since
2021) is slower still. The skyline below packs 1,000 parts in a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gui.views.layout.geometry import Point

#: widths tried, as multiples of the width that would give the aspect ratio exactly
_WIDTH_FACTORS = (0.75, 0.9, 1.0, 1.12, 1.3, 1.6)


def pack(sizes: Sequence[tuple[float, float]], aspect: float, gap: float
         ) -> tuple[list[Point], float, float]:
    """Top-left corners for rectangles of ``sizes`` packed ``gap`` apart, so that
    width / height of the whole is close to ``aspect``; and that width and height."""
    n = len(sizes)
    if n == 0:
        return [], 0.0, 0.0
    if n == 1:
        return [(0.0, 0.0)], sizes[0][0], sizes[0][1]
    order = sorted(range(n), key=lambda i: (-sizes[i][1], -sizes[i][0], i))
    area = sum((w + gap) * (h + gap) for w, h in sizes)
    widest = max(w for w, _ in sizes) + gap
    ideal = math.sqrt(area * aspect)
    best: tuple[float, list[Point], float, float] | None = None
    tried: set[float] = set()
    for f in _WIDTH_FACTORS:
        limit = max(widest, ideal * f)
        if limit in tried:
            continue
        tried.add(limit)
        places, width, height = _skyline(sizes, order, limit, gap)
        # distance from the wanted shape, on a log scale; a little for wasted area
        score = abs(math.log((width / height) / aspect)) + 0.25 * (width * height / area)
        if best is None or score < best[0]:
            best = (score, places, width, height)
    assert best is not None
    return best[1], best[2], best[3]


def _skyline(sizes: Sequence[tuple[float, float]], order: list[int], limit: float,
             gap: float) -> tuple[list[Point], float, float]:
    """Bottom-left skyline packing within ``limit`` wide (a wider part gets its own
    row). The skyline is a list of (x, y, width) segments, left to right."""
    sky: list[list[float]] = [[0.0, 0.0, max(limit, 1.0)]]
    places: list[Point] = [(0.0, 0.0)] * len(sizes)
    right = bottom = 0.0
    for i in order:
        w, h = sizes[i][0] + gap, sizes[i][1] + gap
        best_y = best_x = math.inf
        best_at = -1
        for s in range(len(sky)):
            x = sky[s][0]
            if x + w > limit + 0.01 and s:
                break
            # the highest segment under [x, x + w)
            y, t, end = 0.0, s, x + w
            while t < len(sky) and sky[t][0] < end - 0.01:
                if sky[t][1] > y:
                    y = sky[t][1]
                t += 1
            if y < best_y - 0.01 or (abs(y - best_y) <= 0.01 and x < best_x):
                best_y, best_x, best_at = y, x, s
        x, y = best_x, best_y
        places[i] = (x, y)
        right = max(right, x + sizes[i][0])
        bottom = max(bottom, y + sizes[i][1])
        _raise(sky, best_at, x, x + w, y + h)
    return places, right, bottom


def _raise(sky: list[list[float]], at: int, x0: float, x1: float, top: float) -> None:
    """Lift the skyline to ``top`` over [x0, x1), merging equal neighbours."""
    out: list[list[float]] = sky[:at]
    placed = False
    for seg in sky[at:]:
        sx, sy, sw = seg
        ex = sx + sw
        if ex <= x0 + 0.01 or sx >= x1 - 0.01:
            if sx >= x1 - 0.01 and not placed:
                out.append([x0, top, x1 - x0])
                placed = True
            out.append(seg)
            continue
        if sx < x0:
            out.append([sx, sy, x0 - sx])
        if not placed:
            out.append([x0, top, x1 - x0])
            placed = True
        if ex > x1:
            out.append([x1, sy, ex - x1])
    if not placed:
        out.append([x0, top, x1 - x0])
    merged: list[list[float]] = []
    for seg in out:
        if merged and abs(merged[-1][1] - seg[1]) < 0.01:
            merged[-1][2] = seg[0] + seg[2] - merged[-1][0]
        else:
            merged.append(seg)
    sky[:] = merged

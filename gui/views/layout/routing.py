"""Links drawn around cards: an obstacle-avoiding orthogonal router.

The layered layout draws every link in free space by construction. After that the
picture changes piece by piece — new cards placed beside old ones, cards dragged by
hand, a chain folded — and a link's old path may now cross a card. :class:`Router`
draws such links again: first the few obvious shapes (down, across, down; or around
the side when the child is not below the parent), and when every one of them runs
through a card, a shortest path with few bends over the grid of lines that pass
along the cards' sides (an orthogonal visibility grid, searched with A*).

Qt-free. :func:`rounded` turns a path's corners into short arcs, as the canvas
draws it, so that what ``blockgraph render -o FILE.json`` writes is the line drawn.
"""

from __future__ import annotations

import builtins
import heapq
import itertools
import math
from collections.abc import Iterable

from gui.views.layout.geometry import Point, Rect, simplify

#: distance a link keeps from cards it does not connect
CLEARANCE = 8.0
#: straight run out of a card's port before a link may turn
STUB = 18.0
_CELL = 256.0
_BEND_COST = 60.0


class RectIndex:
    """Cards by key in a grid of buckets, to find those near a segment quickly."""

    def __init__(self, rects: dict[str, Rect] | None = None) -> None:
        self.rects: dict[str, Rect] = {}
        self._grid: dict[tuple[int, int], set[str]] = {}
        for k, r in (rects or {}).items():
            self.set(k, r)

    def _cells(self, r: Rect) -> Iterable[tuple[int, int]]:
        x, y, w, h = r
        for i in range(math.floor(x / _CELL), math.floor((x + w) / _CELL) + 1):
            for j in range(math.floor(y / _CELL), math.floor((y + h) / _CELL) + 1):
                yield i, j

    def set(self, key: str, rect: Rect) -> None:
        if key in self.rects:
            self.remove(key)
        self.rects[key] = rect
        for c in self._cells(rect):
            self._grid.setdefault(c, set()).add(key)

    def remove(self, key: str) -> None:
        rect = self.rects.pop(key, None)
        if rect is None:
            return
        for c in self._cells(rect):
            bucket = self._grid.get(c)
            if bucket is not None:
                bucket.discard(key)

    def near(self, rect: Rect) -> builtins.set[str]:
        """Keys of cards whose buckets meet ``rect`` (a superset of those inside)."""
        out: builtins.set[str] = set()
        for c in self._cells(rect):
            out |= self._grid.get(c, set())
        return out

    def inside(self, rect: Rect, margin: float = 0.0) -> list[str]:
        """Keys of cards that share interior points with ``rect`` grown by ``margin``."""
        x, y, w, h = rect
        x0, y0, x1, y1 = x - margin, y - margin, x + w + margin, y + h + margin
        out = []
        for k in self.near((x0, y0, x1 - x0, y1 - y0)):
            cx, cy, cw, ch = self.rects[k]
            if cx < x1 and x0 < cx + cw and cy < y1 and y0 < cy + ch:
                out.append(k)
        return out

    def nearest_free(self, box: Rect, step_x: float, step_y: float, margin: float,
                     rings: int = 60) -> Point | None:
        """Where the corner of ``box`` goes, on a grid of ``step_x`` × ``step_y`` around
        its place, for the box to keep ``margin`` from every card: the nearest such
        place in ``rings`` rings, None when there is none."""
        bx, by, width, height = box
        for radius in range(0, rings):
            ring = sorted(((dx, dy) for dx in range(-radius, radius + 1)
                           for dy in range(-radius, radius + 1)
                           if max(abs(dx), abs(dy)) == radius),
                          key=lambda d: d[0] * d[0] + d[1] * d[1])
            free = next(((bx + dx * step_x, by + dy * step_y) for dx, dy in ring
                         if not self.inside((bx + dx * step_x, by + dy * step_y, width,
                                             height), margin)), None)
            if free is not None:
                return free
        return None

    def blocked(self, a: Point, b: Point, skip: tuple[str, ...] = (),
                clearance: float = CLEARANCE) -> bool:
        """Whether the axis-parallel segment a–b passes through (or within
        ``clearance`` of) a card other than those in ``skip``."""
        x0, x1 = (a[0], b[0]) if a[0] <= b[0] else (b[0], a[0])
        y0, y1 = (a[1], b[1]) if a[1] <= b[1] else (b[1], a[1])
        c = clearance
        for k in self.near((x0 - c, y0 - c, x1 - x0 + 2 * c, y1 - y0 + 2 * c)):
            if k in skip:
                continue
            cx, cy, cw, ch = self.rects[k]
            if cx - c < x1 and x0 < cx + cw + c and cy - c < y1 and y0 < cy + ch + c:
                return True
        return False

    def path_blocked(self, pts: list[Point], skip: tuple[str, ...] = (),
                     clearance: float = CLEARANCE) -> bool:
        return any(self.blocked(a, b, skip, clearance) for a, b in itertools.pairwise(pts))


class Router:
    """Routes links between cards of a :class:`RectIndex`, around the others."""

    def __init__(self, index: RectIndex) -> None:
        self.index = index

    def route(self, parent: str, child: str, *, sideways: bool = False,
              out_x: float | None = None, in_x: float | None = None,
              lane: float = 0.0) -> list[Point]:
        """A path from ``parent``'s bottom (``out_x``, default its middle) to
        ``child``'s top (``in_x``), or from its right side to the child's left side
        for a protocol node beside its format node (``lane`` moves the line down)."""
        rects = self.index.rects
        px, py, pw, ph = rects[parent]
        cx, cy, cw, ch = rects[child]
        skip = (parent, child)
        if sideways:
            a = (px + pw, py + ph / 2 + lane)
            b = (cx, a[1])
            if cx >= px + pw and cy <= a[1] <= cy + ch and not self.index.blocked(a, b, skip):
                return [a, b]
            a, b = (px + pw, py + ph / 2 + lane), (cx, cy + ch / 2 + lane)
            return self._search(a, b, skip, side_start=True) or [a, b]
        a = (px + pw / 2 if out_x is None else out_x, py + ph)
        b = (cx + cw / 2 if in_x is None else in_x, cy)
        for pts in _candidates(a, b, (px, py, pw, ph), (cx, cy, cw, ch)):
            if not self.index.path_blocked(pts, skip):
                return pts
        return self._search(a, b, skip) or _candidates(a, b, rects[parent], rects[child])[0]

    def _search(self, a: Point, b: Point, skip: tuple[str, ...],
                side_start: bool = False) -> list[Point] | None:
        """A* over the orthogonal visibility grid around the two ends, in a window
        that grows until a path is found (or the whole picture was searched)."""
        start = (a[0] + STUB, a[1]) if side_start else (a[0], a[1] + STUB)
        goal = (b[0] - STUB, b[1]) if side_start else (b[0], b[1] - STUB)
        if self.index.blocked(a, start, skip) or self.index.blocked(goal, b, skip):
            return None
        margin = 120.0
        for _ in range(5):
            left = min(start[0], goal[0]) - margin
            top = min(start[1], goal[1]) - margin
            window = (left, top, abs(start[0] - goal[0]) + 2 * margin,
                      abs(start[1] - goal[1]) + 2 * margin)
            found = _astar(self.index, start, goal, window, skip)
            if found is not None:
                from_a = [a, *found, b]
                return simplify(from_a)
            margin *= 3
        return None


def _candidates(a: Point, b: Point, pr: Rect, cr: Rect) -> list[list[Point]]:
    """The obvious shapes for a link from a (a card's bottom) to b (a card's top)."""
    (ax, ay), (bx, by) = a, b
    out: list[list[Point]] = []
    if by - ay >= 2 * STUB:
        if abs(ax - bx) < 0.01:
            out.append([a, b])
        for f in (0.5, 0.0, 1.0, 0.25, 0.75):
            ym = ay + STUB + (by - ay - 2 * STUB) * f
            out.append([a, (ax, ym), (bx, ym), b])
    else:
        # the child is level with or above the parent: around one side
        y_low, y_high = ay + STUB, by - STUB
        right = max(pr[0] + pr[2], cr[0] + cr[2]) + 2 * CLEARANCE + 8
        left = min(pr[0], cr[0]) - 2 * CLEARANCE - 8
        for xs in (right, left):
            out.append([a, (ax, y_low), (xs, y_low), (xs, y_high), (bx, y_high), b])
    return out


# A* over a grid built for this search: the grid, its blocked cells and the search share
# their index arrays, and the search loop is the textbook one
def _astar(index: RectIndex, start: Point, goal: Point, window: Rect,  # noqa: C901
           skip: tuple[str, ...]) -> list[Point] | None:
    """Shortest path with few bends from ``start`` to ``goal`` inside ``window``.

    The grid's lines are the borders of the cards' keep-out zones (a card grown by
    the clearance) and the lines through the two ends, so between two neighbouring
    lines a zone is either wholly present or absent: a cell of the grid is blocked
    or free as a whole, and a step along a grid line is blocked exactly when the
    cells on both sides of it are (the line then runs inside a zone)."""
    wx, wy, ww, wh = window
    c = CLEARANCE
    zones = []
    for k in index.inside(window, c):
        if k not in skip:
            zx, zy, zw, zh = index.rects[k]
            zones.append((zx - c, zy - c, zx + zw + c, zy + zh + c))
    xs = {start[0], goal[0], wx, wx + ww}
    ys = {start[1], goal[1], wy, wy + wh}
    for x0, y0, x1, y1 in zones:
        xs.update((x0, x1))
        ys.update((y0, y1))
    xl = sorted(v for v in xs if wx <= v <= wx + ww)
    yl = sorted(v for v in ys if wy <= v <= wy + wh)
    xi = {v: i for i, v in enumerate(xl)}
    yi = {v: i for i, v in enumerate(yl)}
    nx_, ny_ = len(xl), len(yl)
    # cell (i, j) lies between lines i, i+1 and j, j+1
    cell = [[False] * ny_ for _ in range(nx_)]
    for x0, y0, x1, y1 in zones:
        i0 = xi.get(x0, 0) if x0 >= wx else 0
        i1 = xi.get(x1, nx_ - 1) if x1 <= wx + ww else nx_ - 1
        j0 = yi.get(y0, 0) if y0 >= wy else 0
        j1 = yi.get(y1, ny_ - 1) if y1 <= wy + wh else ny_ - 1
        for i in range(i0, i1):
            col = cell[i]
            for j in range(j0, j1):
                col[j] = True

    def blocked_cell(i: int, j: int) -> bool:
        # outside the window counts as blocked: a zone reaching across the window's
        # border covers the cell inside it too, so a step along the border is free
        # exactly when the cell inside is
        return not (0 <= i < nx_ - 1 and 0 <= j < ny_ - 1) or cell[i][j]

    def free(p: tuple[int, int], q: tuple[int, int]) -> bool:
        if p[1] == q[1]:   # along a horizontal line, between columns
            i, j = min(p[0], q[0]), p[1]
            return not (blocked_cell(i, j - 1) and blocked_cell(i, j))
        i, j = p[0], min(p[1], q[1])
        return not (blocked_cell(i - 1, j) and blocked_cell(i, j))

    s, t = (xi[start[0]], yi[start[1]]), (xi[goal[0]], yi[goal[1]])
    gx, gy = goal

    def h(p: tuple[int, int]) -> float:
        # weighted (x2): a path a little longer than the shortest, found by looking
        # at a small fraction of the grid — a link rebased across a big host is
        # routed within a frame's time
        return 2.0 * (abs(xl[p[0]] - gx) + abs(yl[p[1]] - gy))

    # state: (grid point, direction 0 horizontal / 1 vertical / -1 none)
    best: dict[tuple[tuple[int, int], int], float] = {(s, -1): 0.0}
    came: dict[tuple[tuple[int, int], int], tuple[tuple[int, int], int]] = {}
    heap: list[tuple[float, float, tuple[int, int], int]] = [(h(s), 0.0, s, -1)]
    while heap:
        _f, cost, p, d = heapq.heappop(heap)
        if p == t:
            pts = [(xl[p[0]], yl[p[1]])]
            state = (p, d)
            while state in came:
                state = came[state]
                pts.append((xl[state[0][0]], yl[state[0][1]]))
            return pts[::-1]
        if cost > best.get((p, d), math.inf):
            continue
        for nd, q in ((0, (p[0] + 1, p[1])), (0, (p[0] - 1, p[1])),
                      (1, (p[0], p[1] + 1)), (1, (p[0], p[1] - 1))):
            if not (0 <= q[0] < nx_ and 0 <= q[1] < ny_):
                continue
            step = abs(xl[q[0]] - xl[p[0]]) + abs(yl[q[1]] - yl[p[1]])
            new = cost + step + (_BEND_COST if d not in (-1, nd) else 0.0)
            if new >= best.get((q, nd), math.inf) or not free(p, q):
                continue
            best[(q, nd)] = new
            came[(q, nd)] = (p, d)
            heapq.heappush(heap, (new + h(q), new, q, nd))
    return None


def rounded(pts: list[Point], radius: float = 10.0) -> list[Point]:
    """The path as drawn: each corner replaced by a short arc (four points on it), at
    most ``radius`` and at most half of each of the two segments it joins."""
    if len(pts) < 3:
        return list(pts)
    out: list[Point] = [pts[0]]
    for i in range(1, len(pts) - 1):
        (ax, ay), (bx, by), (cx, cy) = pts[i - 1], pts[i], pts[i + 1]
        la = math.hypot(bx - ax, by - ay)
        lc = math.hypot(cx - bx, cy - by)
        r = min(radius, la / 2, lc / 2)
        if r < 0.5:
            out.append((bx, by))
            continue
        # from the point r before the corner to the point r after it, a quadratic
        # curve with the corner as its control point, sampled
        p0 = (bx - (bx - ax) / la * r, by - (by - ay) / la * r)
        p2 = (bx + (cx - bx) / lc * r, by + (cy - by) / lc * r)
        for t in (0.0, 1 / 3, 2 / 3, 1.0):
            u = 1 - t
            out.append((u * u * p0[0] + 2 * u * t * bx + t * t * p2[0],
                        u * u * p0[1] + 2 * u * t * by + t * t * p2[1]))
    out.append(pts[-1])
    return out

"""One connected part of the graph as a layered drawing (the Sugiyama pipeline).

The steps are the classic ones that Graphviz ``dot``, OGDF and ELK implement, kept
linear or ``n log n`` so that 5,000 nodes take well under a second in Python:

1. rows from :func:`~gui.views.layout.structure.ranks` (overlays above their backing);
2. a link that spans several rows gets a *lane* in every row it passes (a dummy
   vertex a few units wide), so it can never run through a card;
3. crossing reduction: rows start in depth-first order from the sources (a chain
   stays together), then barycentre sweeps down and up, keeping the order with the
   fewest crossings (counted exactly, pair of rows by pair of rows);
4. x: each vertex follows the mean of its neighbours above, then below, then above,
   packed left to right without overlaps;
5. links leave and enter cards at *ports* spread along the card's edge in the order
   of the vertices they go to, and run between rows on *tracks*: two links whose
   horizontal runs overlap get different tracks, ordered so that they cross as
   little as the ports allow, and a row's gap grows with the tracks it holds. So
   parallel links stay apart and every link is drawn in free space by construction.

Links this cannot draw (a cycle's back link, a link within one row) are left to the
obstacle-avoiding router (:mod:`gui.views.layout.routing`) by the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gui.views.layout.geometry import Geometry, Point, Rect, simplify
from gui.views.layout.structure import Structure

EdgeKey = tuple[str, str, str]  # parent, role, child
#: a card's width and height by key (beside: a protocol node drawn beside its parent)
SizeOf = Callable[[str], tuple[float, float]]


@dataclass(slots=True)
class Part:
    """A laid-out part: cards and link paths in its own coordinates (top-left 0, 0)."""

    rects: dict[str, Rect]
    paths: dict[EdgeKey, list[Point]]
    width: float
    height: float
    #: links of the part left for the router (a cycle's back link, a same-row link)
    unrouted: list[EdgeKey] = field(default_factory=list)


# one Sugiyama pass (links to lanes, row order, x positions, routes) over arrays shared by
# every step; its phases are marked by "# --" comments
def lay_out_part(keys: Sequence[str], st: Structure, rank: dict[str, int],  # noqa: C901, PLR0915
                 edges: Sequence[Any], size: SizeOf, g: Geometry) -> Part:
    """Lay out the layering nodes ``keys`` (one connected part), their protocol
    nodes beside them, and ``edges`` (the part's links)."""
    base = min(rank[k] for k in keys)
    n_rows = max(rank[k] for k in keys) - base + 1
    vid = {k: i for i, k in enumerate(keys)}
    n_real = len(keys)
    row_of = [rank[k] - base for k in keys]
    # -- links: layered (downwards, through lanes), beside, or left to the router
    layered: list[tuple[EdgeKey, int, int]] = []
    beside_links: list[EdgeKey] = []
    unrouted: list[EdgeKey] = []
    for e in edges:
        ek = (e.parent, e.role, e.child)
        if st.beside_of.get(e.child) == e.parent:
            beside_links.append(ek)
            continue
        u, v = vid.get(e.parent), vid.get(e.child)
        if u is None or v is None or row_of[v] <= row_of[u]:
            unrouted.append(ek)
            continue
        layered.append((ek, u, v))
    # -- vertices: the real ones, then a lane per row a long link passes through
    chain: list[list[int]] = []        # per layered link: its vertices top to bottom
    lanes_of: dict[int, list[int]] = {}  # real vertex -> lanes its links start
    row_list = list(row_of)
    for _ek, u, v in layered:
        path = [u]
        for r in range(row_of[u] + 1, row_of[v]):
            path.append(len(row_list))
            row_list.append(r)
        path.append(v)
        chain.append(path)
        if len(path) > 2:
            lanes_of.setdefault(u, []).extend(path[1:-1])
    n_vert = len(row_list)
    up: list[list[int]] = [[] for _ in range(n_vert)]
    down: list[list[int]] = [[] for _ in range(n_vert)]
    for path in chain:
        for a, b in itertools.pairwise(path):
            down[a].append(b)
            up[b].append(a)
    rows = _initial_rows(keys, st, vid, row_list, n_rows, lanes_of, down, n_real)
    _reduce_crossings(rows, up, down)
    # -- x: extents of every vertex around its centre
    left_w = [g.lane_w / 2] * n_vert
    right_w = [g.lane_w / 2] * n_vert
    heights = [0.0] * n_vert
    widths = [0.0] * n_vert
    for i, k in enumerate(keys):
        w, h = size(k)
        widths[i], heights[i] = w, h
        left_w[i] = right_w[i] = w / 2
        side = st.beside.get(k)
        if side is not None:
            right_w[i] += g.beside_gap + size(side)[0]
    centre = _place_x(rows, up, down, left_w, right_w, n_real, g)
    left = min(c - w for c, w in zip(centre, left_w, strict=True))
    if left:
        centre = [c - left for c in centre]
    # -- ports, tracks, rows' y
    out_port, in_port = _ports(chain, centre, widths, g)
    row_h = [0.0] * n_rows
    for i in range(n_real):
        if heights[i] > row_h[row_of[i]]:
            row_h[row_of[i]] = heights[i]
    pieces: list[list[tuple[float, float, int, int]]] = [[] for _ in range(n_rows)]
    for ci, path in enumerate(chain):
        for j in range(len(path) - 1):
            a, b = path[j], path[j + 1]
            xt = out_port[ci] if j == 0 else centre[a]
            xb = in_port[ci] if j == len(path) - 2 else centre[b]
            pieces[row_list[a]].append((xt, xb, ci, j))
    tracks: list[dict[tuple[int, int], float]] = []
    channel_h = [0.0] * n_rows
    for r in range(n_rows):
        fractions, n_tracks = _assign_tracks(pieces[r])
        tracks.append(fractions)
        channel_h[r] = max(g.row_gap, (n_tracks + 1) * g.track_gap)
    top = [0.0] * n_rows
    for r in range(1, n_rows):
        top[r] = top[r - 1] + row_h[r - 1] + channel_h[r - 1]
    # -- cards
    rects: dict[str, Rect] = {}
    for i, k in enumerate(keys):
        x = centre[i] - widths[i] / 2
        y = top[row_of[i]]
        rects[k] = (x, y, widths[i], heights[i])
        side = st.beside.get(k)
        if side is not None:
            sw, sh = size(side)
            rects[side] = (x + widths[i] + g.beside_gap, y + (heights[i] - sh) / 2, sw, sh)
    # -- paths
    paths: dict[EdgeKey, list[Point]] = {}
    for ci, (ek, u, v) in enumerate(layered):
        path = chain[ci]
        pts: list[Point] = [(out_port[ci], top[row_of[u]] + heights[u])]
        for j in range(len(path) - 1):
            a = path[j]
            xt, xb = pts[-1][0], (in_port[ci] if j == len(path) - 2 else centre[path[j + 1]])
            if abs(xt - xb) > 0.01:
                r = row_list[a]
                y = top[r] + row_h[r] + channel_h[r] * tracks[r][(ci, j)]
                pts.append((xt, y))
                pts.append((xb, y))
        pts.append((in_port[ci], top[row_of[v]]))
        # a link between neighbouring rows has no straight run to merge
        paths[ek] = pts if len(path) == 2 else simplify(pts)
    _beside_paths(beside_links, rects, paths, g)
    # a lane may lie right of every card: the part holds its links too
    width = max(max((x + w for x, _, w, _ in rects.values()), default=0.0),
                max((c + r for c, r in zip(centre, right_w, strict=True)), default=0.0))
    height = max((y + h for _, y, _, h in rects.values()), default=0.0)
    return Part(rects, paths, width, height, unrouted)


def _initial_rows(keys: Sequence[str], st: Structure, vid: dict[str, int],
                  row_list: list[int], n_rows: int, lanes_of: dict[int, list[int]],
                  down: list[list[int]], n_real: int) -> list[list[int]]:
    """Rows in depth-first order from the sources, so each chain stays together; a
    long link's lanes join their rows when its parent is visited."""
    seen = [False] * len(row_list)
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    roots = [vid[k] for k in keys if not st.parents[k]]
    # backends and jobs first: they own the chains below them
    roots.sort(key=lambda v: 0 if keys[v].startswith(("backend:", "job:")) else 1)
    for root in [*roots, *range(n_real)]:
        if seen[root]:
            continue
        stack = [root]
        while stack:
            v = stack.pop()
            if seen[v]:
                continue
            seen[v] = True
            rows[row_list[v]].append(v)
            for lane in lanes_of.get(v, ()):
                if not seen[lane]:
                    seen[lane] = True
                    rows[row_list[lane]].append(lane)
            stack.extend(reversed([c for c in down[v] if c < n_real and not seen[c]]))
    return rows


def _crossings(rows: list[list[int]], down: list[list[int]], pos: list[int]) -> int:
    """Exact number of link crossings between consecutive rows (inversions counted
    with a Fenwick tree, pair of rows by pair of rows)."""
    total = 0
    for r in range(len(rows) - 1):
        lower = rows[r + 1]
        if len(lower) < 2 or (len(rows[r]) < 2 and not any(len(down[v]) > 1 for v in rows[r])):
            continue
        ends: list[int] = []
        for v in rows[r]:
            ends.extend(sorted(pos[c] for c in down[v]))
        size = len(lower)
        tree = [0] * (size + 1)
        for seen, p in enumerate(ends):
            # links already seen that end right of p cross this one
            i, smaller = p + 1, 0
            while i > 0:
                smaller += tree[i]
                i -= i & -i
            total += seen - smaller
            i = p + 1
            while i <= size:
                tree[i] += 1
                i += i & -i
    return total


def _reduce_crossings(rows: list[list[int]], up: list[list[int]], down: list[list[int]],
                      sweeps: int = 4) -> None:
    """Barycentre sweeps down and up; the order with the fewest crossings is kept."""
    pos = [0] * len(up)
    for row in rows:
        for i, v in enumerate(row):
            pos[v] = i
    best = _crossings(rows, down, pos)
    if best == 0:
        return
    best_rows = [row[:] for row in rows]
    for _ in range(sweeps):
        for nbrs, sequence in ((up, rows[1:]), (down, rows[-2::-1])):
            for row in sequence:
                def key(v: int, nbrs: list[list[int]] = nbrs) -> float:
                    ns = nbrs[v]
                    if len(ns) == 1:
                        return pos[ns[0]]
                    return sum([pos[n] for n in ns]) / len(ns) if ns else pos[v]

                row.sort(key=key)
                for i, v in enumerate(row):
                    pos[v] = i
        count = _crossings(rows, down, pos)
        if count < best:
            best, best_rows = count, [row[:] for row in rows]
            if best == 0:
                break
        elif count >= best:
            break
    rows[:] = best_rows


def _place_x(rows: list[list[int]], up: list[list[int]], down: list[list[int]],
             left_w: list[float], right_w: list[float], n_real: int,
             g: Geometry) -> list[float]:
    """Centres: each vertex follows its neighbours above, then below, then above,
    pushed right as far as the vertex before it in its row needs."""
    centre: list[float | None] = [None] * len(up)
    passes = ((rows, up), (rows[::-1], down), (rows, up))
    for row_seq, nbrs in passes:
        for row in row_seq:
            prev_end = float("-inf")
            prev_real = False
            for v in row:
                ns = nbrs[v]
                want: float | None
                if len(ns) == 1 and centre[ns[0]] is not None:
                    want = centre[ns[0]]
                else:
                    placed = [c for c in (centre[n] for n in ns) if c is not None]
                    want = sum(placed) / len(placed) if placed else centre[v]
                real = v < n_real
                gap = g.col_gap if real and prev_real else g.lane_gap
                floor = prev_end + gap + left_w[v]
                if want is None:
                    want = floor if prev_end != float("-inf") else left_w[v]
                c = want if want > floor else floor
                centre[v] = c
                prev_end = c + right_w[v]
                prev_real = real
    return [c if c is not None else 0.0 for c in centre]


def _ports(chain: list[list[int]], centre: list[float], widths: list[float],
           g: Geometry) -> tuple[list[float], list[float]]:
    """Where each layered link leaves its parent and enters its child: spread along
    the card's edge in the order of the vertices at the other end, so links that
    share a card neither overlap nor cross at it."""
    outs: dict[int, list[int]] = {}
    ins: dict[int, list[int]] = {}
    for ci, path in enumerate(chain):
        outs.setdefault(path[0], []).append(ci)
        ins.setdefault(path[-1], []).append(ci)
    out_port = [centre[path[0]] for path in chain]
    for v, cis in outs.items():
        if len(cis) > 1:
            cis.sort(key=lambda ci: (centre[chain[ci][1]], ci))
            _spread(cis, out_port, centre[v], widths[v], g)
    in_port = [centre[path[-1]] for path in chain]
    for v, cis in ins.items():
        if len(cis) > 1:
            cis.sort(key=lambda ci: (out_port[ci] if len(chain[ci]) == 2
                                     else centre[chain[ci][-2]], ci))
            _spread(cis, in_port, centre[v], widths[v], g)
    return out_port, in_port


def _spread(cis: list[int], port: list[float], mid: float, width: float, g: Geometry) -> None:
    k = len(cis)
    step = min(g.port_gap, width * 0.8 / (k - 1))
    first = mid - step * (k - 1) / 2
    for i, ci in enumerate(cis):
        port[ci] = first + i * step


def _assign_tracks(pieces: list[tuple[float, float, int, int]]
                   ) -> tuple[dict[tuple[int, int], float], int]:
    """Tracks for the horizontal runs between two rows.

    Each piece runs down from ``xt`` at the upper row to its track, across, and down
    to ``xb`` at the lower row. Two pieces whose runs overlap in x need different
    tracks; which one goes above decides whether their vertical parts cross the
    other's run, so each overlapping pair is ordered the way that crosses less
    (and never so that two vertical parts run along each other). Tracks then follow
    that order (longest path in the order's graph). Returns each piece's height in
    the gap as a fraction (0 top, 1 bottom) and the number of tracks."""
    # Over 60 lines: a long docstring and one algorithm (order the overlapping pairs, then the
    # longest path in that order).
    runs = [(xt, xb, ci, j) for xt, xb, ci, j in pieces if abs(xt - xb) > 0.01]
    if not runs:
        return {}, 0
    if len(runs) == 1:
        return {(runs[0][2], runs[0][3]): 0.5}, 1
    n = len(runs)
    lo = [min(r[0], r[1]) for r in runs]
    hi = [max(r[0], r[1]) for r in runs]
    order = sorted(range(n), key=lo.__getitem__)
    after: list[list[int]] = [[] for _ in range(n)]   # a -> b: a runs above b
    before_count = [0] * n
    eps = 0.01
    for ii, a in enumerate(order):
        a_lo, a_hi = lo[a], hi[a]
        a_up, a_down = runs[a][0], runs[a][1]
        for b in order[ii + 1:]:
            b_lo, b_hi = lo[b], hi[b]
            if b_lo > a_hi + eps:
                break
            b_up, b_down = runs[b][0], runs[b][1]
            # crossings if a runs above b: a's lower vertical meets b's run, b's upper
            # vertical meets a's run; two verticals on one line: an overlap, never
            a_first = (b_lo + eps < a_down < b_hi - eps) + (a_lo + eps < b_up < a_hi - eps)
            if abs(a_down - b_down) <= eps or abs(a_down - b_up) <= eps \
                    or abs(b_up - a_up) <= eps:
                a_first += 100
            b_first = (a_lo + eps < b_down < a_hi - eps) + (b_lo + eps < a_up < b_hi - eps)
            if abs(b_down - a_down) <= eps or abs(b_down - a_up) <= eps \
                    or abs(a_up - b_up) <= eps:
                b_first += 100
            upper, lower = (a, b) if a_first <= b_first else (b, a)
            after[upper].append(lower)
            before_count[lower] += 1
    # Kahn's order; a cycle (possible with ties) is broken at the fewest waiting
    track = [0] * n
    ready = [i for i in order if before_count[i] == 0]
    done = [False] * n
    remaining = n
    while remaining:
        if not ready:
            i = min((i for i in range(n) if not done[i]), key=before_count.__getitem__)
            before_count[i] = 0
            ready.append(i)
        i = ready.pop()
        if done[i]:
            continue
        done[i] = True
        remaining -= 1
        for j in after[i]:
            if track[i] + 1 > track[j]:
                track[j] = track[i] + 1
            before_count[j] -= 1
            if before_count[j] == 0 and not done[j]:
                ready.append(j)
    n_tracks = max(track) + 1
    return ({(runs[i][2], runs[i][3]): (track[i] + 1) / (n_tracks + 1) for i in range(n)},
            n_tracks)


def _beside_paths(links: list[EdgeKey], rects: dict[str, Rect],
                  paths: dict[EdgeKey, list[Point]], g: Geometry) -> None:
    """A format node's link to the protocol node beside it: a short horizontal line
    (several links between the same pair are drawn apart)."""
    by_pair: dict[tuple[str, str], list[EdgeKey]] = {}
    for ek in links:
        by_pair.setdefault((ek[0], ek[2]), []).append(ek)
    for (parent, child), eks in by_pair.items():
        px, _py, pw, _ph = rects[parent]
        cx, cy, _cw, ch = rects[child]
        mid = cy + ch / 2
        for i, ek in enumerate(eks):
            dy = (i - (len(eks) - 1) / 2) * g.track_gap
            paths[ek] = [(px + pw, mid + dy), (cx, mid + dy)]

"""Layered automatic layout of a block graph: snapshot in, positions out.

Pure and Qt-free, so the canvas, ``blockgraph render`` and the benchmarks share
it and it is unit-tested without a display.

The picture it draws is the one people sketch on a whiteboard:

* block backends and jobs sit at the top of the chain they use;
* every overlay sits directly above its backing image (``backing`` and filter
  links point down);
* a protocol node (the ``file`` child of a format node that nobody else uses)
  sits *beside* its format node on the same row instead of taking a row of its
  own, so a chain of N images is N rows tall, not 2N;
* a base shared by several overlays is one node, centred under its overlays.

Ranks use the longest path from the sources, then every node is pulled down to
sit one row above its highest child, so short chains hang beside long ones
instead of floating at the top. Rows are ordered by a depth-first walk from the
sources followed by barycentre sweeps; x positions follow the parents (and then
the children) and are packed left to right without overlaps. Everything is
linear or ``n log n``: 5,000 nodes take tens of milliseconds.

Positions are stable across refreshes: :func:`layout` keeps the position of
every node it was given and places only new nodes, next to a neighbour that is
already placed, in the nearest free slot. A node therefore never jumps because
an unrelated node changed; :func:`full_layout` re-lays everything on demand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import networkx as nx

Point = tuple[float, float]


class _Node(Protocol):
    key: str
    kind: str


class _Edge(Protocol):
    parent: str
    child: str
    role: str


class SnapshotLike(Protocol):
    """What the layout needs from a ``GraphSnapshot``."""

    @property
    def nodes(self) -> Mapping[str, Any]: ...

    @property
    def edges(self) -> Iterable[Any]: ...


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

    @property
    def row_h(self) -> float:
        return self.node_h + self.row_gap

    def size(self, kind: str, beside: bool) -> tuple[float, float]:
        """Width and height of the card for a node of ``kind``."""
        if beside:
            return self.beside_w, self.beside_h
        if kind in ("block-backend", "block-job"):
            return self.node_w, self.small_h
        return self.node_w, self.node_h


DEFAULT_GEOMETRY = Geometry()


@dataclass(slots=True)
class Structure:
    """The parts of the graph the layout reasons about."""

    order: list[str]  # every node, snapshot order
    children: dict[str, list[str]]  # layering links only, first-seen order
    parents: dict[str, list[str]]
    beside_of: dict[str, str]  # protocol node -> the format node it sits beside
    beside: dict[str, str]  # format node -> its protocol node


def analyse(snapshot: SnapshotLike) -> Structure:
    """Split the edges into layering links and "beside" links."""
    nodes = snapshot.nodes
    order = list(nodes)
    in_edges: dict[str, list[Any]] = defaultdict(list)
    has_children: set[str] = set()
    edges = list(snapshot.edges)
    for e in edges:
        in_edges[e.child].append(e)
        has_children.add(e.parent)
    beside_of: dict[str, str] = {}
    beside: dict[str, str] = {}
    for key, ins in in_edges.items():
        first = ins[0]
        if (
            first.role == "file"
            and key not in has_children
            and (len(ins) == 1
                 or all(e.parent == first.parent and e.role == "file" for e in ins))
            and first.parent not in beside
            and first.parent in nodes
        ):
            beside_of[key] = first.parent
            beside[first.parent] = key
    children: dict[str, list[str]] = {k: [] for k in order}
    parents: dict[str, list[str]] = {k: [] for k in order}
    # Backing first, then the other roles: the depth-first order then follows chains.
    backing = [e for e in edges if e.role == "backing"]
    for e in backing + [e for e in edges if e.role != "backing"]:
        child, parent = e.child, e.parent
        if child in beside_of or parent not in children or child not in parents:
            continue
        kids = children[parent]
        if child not in kids:
            kids.append(child)
            parents[child].append(parent)
    return Structure(order, children, parents, beside_of, beside)


def _topological(st: Structure, keys: list[str]) -> list[str]:
    """Layering nodes parents-first; cycles (never legal, but drawn) are broken.

    Kahn's algorithm over the structure's own adjacency lists: for the acyclic graphs
    QEMU builds it is a tenth of the cost of building a networkx graph first, which
    counts when the whole first paint of a small graph takes a few milliseconds.
    networkx handles the rare cyclic case (strongly connected components)."""
    parents, children = st.parents, st.children
    waiting = {k: len(parents[k]) for k in keys}
    order = [k for k in keys if not waiting[k]]
    for k in order:  # grows while it is walked
        for c in children[k]:
            waiting[c] -= 1
            if not waiting[c]:
                order.append(c)
    if len(order) == len(keys):
        return order
    g = nx.DiGraph()
    g.add_nodes_from(keys)
    g.add_edges_from((p, c) for p in keys for c in children[p])
    cond = nx.condensation(g)
    members = cond.graph["mapping"]
    groups: dict[int, list[str]] = defaultdict(list)
    for k in keys:
        groups[members[k]].append(k)
    out: list[str] = []
    for comp in nx.topological_sort(cond):
        out.extend(groups[comp])
    return out


def ranks(st: Structure) -> dict[str, int]:
    """Row of every layering node: longest path from the sources, then pulled down."""
    keys = [k for k in st.order if k not in st.beside_of]
    topo = _topological(st, keys)
    pos = {k: i for i, k in enumerate(topo)}
    parents, children = st.parents, st.children
    rank: dict[str, int] = {}
    for k in topo:
        here = pos[k]
        ps = [rank[p] for p in parents[k] if p in rank and pos[p] < here]
        rank[k] = max(ps) + 1 if ps else 0
    for k in reversed(topo):
        here = pos[k]
        cs = [rank[c] for c in children[k] if pos[c] > here]
        if cs:
            low = min(cs) - 1
            if low > rank[k]:
                rank[k] = low
    return rank


def _initial_order(st: Structure, rank: Mapping[str, int]) -> list[list[str]]:
    """Rows in depth-first order from the sources, so each chain stays together."""
    seen: set[str] = set()
    sequence: list[str] = []
    roots = [k for k in st.order if k in rank and not st.parents[k]]
    # Backends and jobs first: they own the chains below them.
    roots.sort(key=lambda k: 0 if k.startswith(("backend:", "job:")) else 1)
    for root in [*roots, *(k for k in st.order if k in rank)]:
        if root in seen:
            continue
        stack = [root]
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            sequence.append(k)
            stack.extend(reversed([c for c in st.children[k] if c not in seen]))
    rows: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for k in sequence:
        rows[rank[k]].append(k)
    return rows


def _barycentre_sweeps(st: Structure, rows: list[list[str]], sweeps: int = 2) -> None:
    """Reorder each row by the mean position of its neighbours in the row before,
    down then up; stop early once a sweep leaves every row as it was."""
    index = {k: i for row in rows for i, k in enumerate(row)}
    for _ in range(sweeps):
        moved = False
        for direction in (st.parents, st.children):
            sequence = rows[1:] if direction is st.parents else rows[-2::-1]
            for row in sequence:
                def key(k: str, nbrs: Mapping[str, list[str]] = direction) -> float:
                    ns = nbrs[k]
                    if len(ns) == 1:  # most nodes: one parent, one backing
                        return index[ns[0]]
                    return sum([index[n] for n in ns]) / len(ns) if ns else index[k]

                before = row[:]
                row.sort(key=key)
                if row != before:
                    moved = True
                    for i, k in enumerate(row):
                        index[k] = i
        if not moved:
            return


def full_layout(snapshot: SnapshotLike, geometry: Geometry = DEFAULT_GEOMETRY,
                structure: Structure | None = None) -> dict[str, Point]:
    """Lay out every node from scratch; returns the top-left corner of each card."""
    st = structure or analyse(snapshot)
    rank = ranks(st)
    rows = _initial_order(st, rank)
    _barycentre_sweeps(st, rows)
    g = geometry
    half = g.node_w / 2
    wide = g.node_w + g.beside_gap + g.beside_w + g.col_gap  # a card with one beside it
    narrow = g.node_w + g.col_gap
    beside = st.beside
    centre: dict[str, float] = {}
    # Down: follow the parents; up: follow the children; down again to settle.
    passes = [(rows, st.parents), (rows[::-1], st.children), (rows, st.parents)]
    for row_seq, nbrs in passes:
        for row in row_seq:
            x_prev_end = float("-inf")
            for k in row:
                ns = nbrs[k]
                if len(ns) == 1 and ns[0] in centre:  # the common case, without a list
                    want = centre[ns[0]]
                else:
                    placed = [centre[n] for n in ns if n in centre]
                    want = sum(placed) / len(placed) if placed else centre.get(k, x_prev_end)
                if want == float("-inf"):
                    want = half
                left = want - half if want - half > x_prev_end else x_prev_end
                centre[k] = left + half
                x_prev_end = left + (wide if k in beside else narrow)
    shift = min(centre.values()) - half if centre else 0.0
    row_h = g.row_h
    pos: dict[str, Point] = {k: (centre[k] - half - shift, r * row_h) for k, r in rank.items()}
    for k, owner in st.beside_of.items():
        ox, oy = pos[owner]
        pos[k] = (ox + g.node_w + g.beside_gap, oy + (g.node_h - g.beside_h) / 2)
    return pos


class _Occupancy:
    """A spatial hash of placed cards, to find a free slot quickly."""

    def __init__(self, cell: float) -> None:
        self.cell = cell
        self.buckets: dict[tuple[int, int], list[tuple[float, float, float, float]]] = (
            defaultdict(list)
        )

    def _cells(self, x: float, y: float, w: float, h: float) -> Iterable[tuple[int, int]]:
        c = self.cell
        for i in range(int(x // c), int((x + w) // c) + 1):
            for j in range(int(y // c), int((y + h) // c) + 1):
                yield i, j

    def add(self, x: float, y: float, w: float, h: float) -> None:
        for cell in self._cells(x, y, w, h):
            self.buckets[cell].append((x, y, w, h))

    def free(self, x: float, y: float, w: float, h: float) -> bool:
        for cell in self._cells(x, y, w, h):
            for ox, oy, ow, oh in self.buckets.get(cell, ()):
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    return False
        return True


def layout(
    snapshot: SnapshotLike,
    previous: Mapping[str, Point] | None = None,
    geometry: Geometry = DEFAULT_GEOMETRY,
) -> dict[str, Point]:
    """Positions for every node, keeping those in ``previous`` where they were.

    With no previous positions (or none that still exist) this is
    :func:`full_layout`. Otherwise only nodes that are new are placed: a
    protocol node beside its format node, an overlay or a backend above its
    child, anything else below its parent, each in the nearest free slot. A node
    inserted into an existing link (a snapshot under a drive, a job's filter) goes
    between its ends, and the nodes above it — its own ancestors, nothing else —
    move up one row to make room.
    """
    kept = {k: p for k, p in (previous or {}).items() if k in snapshot.nodes}
    if not kept:
        return full_layout(snapshot, geometry)
    new = [k for k in snapshot.nodes if k not in kept]
    if not new:
        return kept
    st = analyse(snapshot)
    g = geometry
    pos = dict(kept)
    occ = _Occupancy(g.node_w + g.col_gap)
    nodes = snapshot.nodes

    def size(k: str) -> tuple[float, float]:
        return g.size(getattr(nodes[k], "kind", "block-node"), k in st.beside_of)

    for k, (x, y) in kept.items():
        occ.add(x - g.col_gap / 2, y - g.row_gap / 4, size(k)[0] + g.col_gap,
                size(k)[1] + g.row_gap / 2)
    new_set = set(new)
    right_edge = max((x + size(k)[0] for k, (x, _) in kept.items()), default=0.0)
    # New nodes with no link to any kept node (a chain just opened) get a layout
    # of their own, placed to the right of everything else.
    islands = _islands(snapshot, st, new_set)
    if islands:
        sub = _SubGraph(
            {k: nodes[k] for k in snapshot.nodes if k in islands},
            [e for e in snapshot.edges if e.parent in islands and e.child in islands],
        )
        sub_pos = full_layout(sub, g)
        min_y = min(y for _, y in sub_pos.values())
        for k, (x, y) in sub_pos.items():
            pos[k] = (x + right_edge + g.col_gap * 2, y - min_y)
        right_edge = max(right_edge, max(x + size(k)[0] for k, (x, _) in pos.items()))
        new_set -= islands
    topo_all = _topological(st, [k for k in st.order if k not in st.beside_of])
    ordered = [k for k in topo_all if k in new_set]
    pending = list(ordered)
    for _ in range(2):
        later: list[str] = []
        for k in pending:
            kids = [c for c in st.children[k] if c in pos]
            pars = [p for p in st.parents[k] if p in pos]
            if kids and pars and all(pos[p][1] < pos[kids[0]][1] for p in pars):
                # inserted into an existing link (an overlay under a drive, a job's
                # filter): make room by lifting what sits above it, one row
                cx, cy = pos[kids[0]]
                lifted = _lift_ancestors(st, pos, kept, pars, g)
                if lifted:
                    occ = _rebuild_occupancy(pos, size, g)
                want = (cx, cy - g.row_h)
            elif kids:
                cx, cy = pos[kids[0]]
                want = (cx, cy - g.row_h)
            elif pars:
                px, py = pos[pars[0]]
                want = (px, py + g.row_h)
            elif any(c in new_set for c in st.children[k]):
                later.append(k)
                continue
            else:
                want = (right_edge + g.col_gap, 0.0)
            x, y = _nearest_free(occ, want, size(k), g, k in st.beside)
            pos[k] = (x, y)
            w, h = size(k)
            extra = g.beside_gap + g.beside_w if k in st.beside else 0.0
            occ.add(x - g.col_gap / 2, y - g.row_gap / 4, w + extra + g.col_gap, h + g.row_gap / 2)
            right_edge = max(right_edge, x + w + extra)
        pending = list(reversed(later))
    for k in pending:  # only left if something is very odd; keep it visible
        pos[k] = (right_edge + g.col_gap, 0.0)
        right_edge += g.node_w + g.col_gap
    for k in new:
        if k in st.beside_of and k in new_set:
            ox, oy = pos[st.beside_of[k]]
            pos[k] = (ox + g.node_w + g.beside_gap, oy + (g.node_h - g.beside_h) / 2)
    return pos


def _lift_ancestors(st: Structure, pos: dict[str, Point], kept: Mapping[str, Point],
                    parents: list[str], g: Geometry) -> set[str]:
    """Move the kept ancestors of an inserted node (and their protocol nodes) up one
    row. Only nodes linked to the change move; everything unrelated stays put."""
    lifted: set[str] = set()
    stack = [p for p in parents if p in kept]
    while stack:
        k = stack.pop()
        if k in lifted:
            continue
        lifted.add(k)
        stack.extend(p for p in st.parents.get(k, ()) if p in kept)
    for k in lifted:
        x, y = pos[k]
        pos[k] = (x, y - g.row_h)
        side = st.beside.get(k)
        if side is not None and side in pos:
            sx, sy = pos[side]
            pos[side] = (sx, sy - g.row_h)
    return lifted


def _rebuild_occupancy(pos: Mapping[str, Point], size: Any, g: Geometry) -> _Occupancy:
    occ = _Occupancy(g.node_w + g.col_gap)
    for k, (x, y) in pos.items():
        w, h = size(k)
        occ.add(x - g.col_gap / 2, y - g.row_gap / 4, w + g.col_gap, h + g.row_gap / 2)
    return occ


@dataclass(slots=True)
class _SubGraph:
    nodes: dict[str, Any]
    edges: list[Any]


def _islands(snapshot: SnapshotLike, st: Structure, new: set[str]) -> set[str]:
    """New nodes in connected components that contain no kept node."""
    g = nx.Graph()
    g.add_nodes_from(snapshot.nodes)
    g.add_edges_from((e.parent, e.child) for e in snapshot.edges
                     if e.parent in snapshot.nodes and e.child in snapshot.nodes)
    out: set[str] = set()
    for comp in nx.connected_components(g):
        if comp <= new:
            out |= comp
    return out


def _nearest_free(
    occ: _Occupancy, want: Point, size: tuple[float, float], g: Geometry, has_beside: bool
) -> Point:
    w, h = size
    if has_beside:
        w += g.beside_gap + g.beside_w
    step_x = g.node_w + g.col_gap
    x0, y0 = want
    for radius in range(0, 40):
        for dx in ((0,) if radius == 0 else (radius, -radius)):
            for dy in (0, -1, 1):
                x, y = x0 + dx * step_x, y0 + dy * g.row_h
                if occ.free(x, y, w, h):
                    return x, y
    return x0 + 40 * step_x, y0

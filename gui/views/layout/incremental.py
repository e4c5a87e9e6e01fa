"""Placing new cards among old ones: nothing moves that does not have to.

After an edit or an event the picture must stay where the user left it. Every card
that survives keeps its place; a new card goes next to the node it attaches to (an
overlay above its backing, a protocol node beside its format node, anything else
below its parent), into the nearest free place — free of other cards and of other
VMs' frames. A node inserted into an existing link (a snapshot under a drive, a job's
filter) goes between its ends, and the nodes above it — its own ancestors, nothing
else — move up one row to make room, when that room is free. New parts that touch no
old card (an image just opened) are laid out on their own (:func:`~gui.views.layout.
drawing.draw`) and put into the first free place of the picture, in reading order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gui.views.layout.drawing import DEFAULT_ASPECT, Frame, draw
from gui.views.layout.geometry import DEFAULT_GEOMETRY, Geometry, Point, Rect, union
from gui.views.layout.routing import RectIndex
from gui.views.layout.structure import SnapshotLike, Structure, analyse, topological

#: how far (in card columns) a new card may land from where it wants to be
_SEARCH_COLUMNS = 40


class _Free:
    """Where a card may go: cards kept apart by half the gaps, and other VMs' frames."""

    def __init__(self, g: Geometry, frames: Sequence[Frame]) -> None:
        self.g = g
        self.cards = RectIndex()
        self.frames = RectIndex({f"{i}": f.rect for i, f in enumerate(frames)})
        self.frame_keys = [set(f.keys) for f in frames]

    def add(self, key: str, rect: Rect) -> None:
        self.cards.set(key, rect)

    def fits(self, rect: Rect, own: set[str] | None = None) -> bool:
        g = self.g
        x, y, w, h = rect
        grown = (x - g.col_gap / 2, y - g.row_gap / 3, w + g.col_gap, h + 2 * g.row_gap / 3)
        if self.cards.inside(grown):
            return False
        for f in self.frames.inside(rect, g.frame_pad / 2):
            if own is None or not (self.frame_keys[int(f)] & own):
                return False
        return True


def _beside_neighbours(st: Structure, pos: dict[str, Point], kept: Mapping[str, Point],
                       kids: list[str], pars: list[str], free: _Free,
                       size: Callable[[str], tuple[float, float]], g: Geometry) -> Point:
    """Where a new card wants to be: a row above its first placed child, else a row
    below its first placed parent."""
    if kids and pars and all(pos[p][1] < pos[kids[0]][1] for p in pars):
        # inserted into an existing link (an overlay under a drive, a job's filter):
        # make room by lifting what sits above it, one row
        cx, cy = pos[kids[0]]
        _lift_ancestors(st, pos, kept, pars, free, size, g)
        return (cx, cy - g.row_h)
    if kids:
        cx, cy = pos[kids[0]]
        return (cx, cy - g.row_h)
    px, py = pos[pars[0]]
    return (px, py + g.row_h)


def layout(snapshot: SnapshotLike, previous: Mapping[str, Point] | None = None,
           geometry: Geometry = DEFAULT_GEOMETRY, frames: Sequence[Frame] = (),
           aspect: float = DEFAULT_ASPECT) -> dict[str, Point]:
    """Positions for every node, keeping those in ``previous`` where they were (but
    for the ancestors of an inserted node, lifted one row when there is room).

    With no previous positions (or none that still exist) this is a full layout."""
    # Over 60 lines: one algorithm (keep, lift ancestors, place the new cards) whose steps share the
    # rows it builds.
    kept = {k: p for k, p in (previous or {}).items() if k in snapshot.nodes}
    if not kept:
        return draw(snapshot, geometry, aspect).positions()
    new = [k for k in snapshot.nodes if k not in kept]
    if not new:
        return kept
    st = analyse(snapshot)
    g = geometry
    nodes = snapshot.nodes

    def size(k: str) -> tuple[float, float]:
        return g.size(getattr(nodes[k], "kind", "block-node"), k in st.beside_of)

    def slot(k: str, x: float, y: float) -> Rect:
        """A card with the protocol node beside it, if it has one."""
        w, h = size(k)
        if k in st.beside:
            w += g.beside_gap + g.beside_w
        return (x, y, w, h)

    pos = dict(kept)
    free = _Free(g, frames)
    for k, (x, y) in kept.items():
        free.add(k, (x, y, *size(k)))
    new_set = set(new)
    islands = _islands(snapshot, new_set)
    if islands:
        _place_islands(snapshot, islands, pos, free, g, aspect, size)
        new_set -= islands
    ordered = [k for k in topological(st, [k for k in st.order if k not in st.beside_of])
               if k in new_set]
    pending = ordered
    for _ in range(2):
        later: list[str] = []
        for k in pending:
            kids = [c for c in st.children[k] if c in pos]
            pars = [p for p in st.parents[k] if p in pos]
            anchor = kids[0] if kids else (pars[0] if pars else None)
            if anchor is None:
                if any(c in new_set for c in st.children[k]):
                    later.append(k)
                    continue
                anchor_keys: set[str] | None = None
                want = _below_all(pos, size, g)
            else:
                anchor_keys = {anchor}
                want = _beside_neighbours(st, pos, kept, kids, pars, free, size, g)
            x, y = _nearest_free(free, slot(k, *want), anchor_keys, g)
            pos[k] = (x, y)
            _w, _h = size(k)
            free.add(k, slot(k, x, y))
        pending = list(reversed(later))
    for k in pending:  # only left if something is very odd; keep it visible
        x, y = _nearest_free(free, slot(k, *_below_all(pos, size, g)), None, g)
        pos[k] = (x, y)
        free.add(k, slot(k, x, y))
    for k in new:
        if k in st.beside_of and k not in pos:
            ox, oy = pos[st.beside_of[k]]
            oh = size(st.beside_of[k])[1]
            pos[k] = (ox + g.node_w + g.beside_gap, oy + (oh - g.beside_h) / 2)
    return pos


def _below_all(pos: Mapping[str, Point], size: Any, g: Geometry) -> Point:
    left = min(x for x, _ in pos.values())
    bottom = max(y + size(k)[1] for k, (_, y) in pos.items())
    return left, bottom + g.component_gap


def _lift_ancestors(st: Structure, pos: dict[str, Point], kept: Mapping[str, Point],
                    parents: list[str], free: _Free, size: Any, g: Geometry) -> None:
    """Move the kept ancestors of an inserted node (and their protocol nodes) up one
    row — if the room above them is free; otherwise they stay where they are and the
    new node is placed beside instead."""
    lifted: set[str] = set()
    stack = [p for p in parents if p in kept]
    while stack:
        k = stack.pop()
        if k in lifted:
            continue
        lifted.add(k)
        stack.extend(p for p in st.parents.get(k, ()) if p in kept)
    moving = set(lifted) | {st.beside[k] for k in lifted if k in st.beside}
    for k in moving:
        free.cards.remove(k)
    targets = {k: (pos[k][0], pos[k][1] - g.row_h) for k in moving if k in pos}
    if all(free.fits((x, y, *size(k)), moving) for k, (x, y) in targets.items()):
        pos.update(targets)
    for k in moving:
        if k in pos:
            free.add(k, (*pos[k], *size(k)))


def _nearest_free(free: _Free, rect: Rect, own: set[str] | None, g: Geometry) -> Point:
    x0, y0, w, h = rect
    step_x = g.node_w + g.col_gap
    for radius in range(0, _SEARCH_COLUMNS):
        for dx in ((0,) if radius == 0 else (radius, -radius)):
            for dy in (0, -1, 1):
                x, y = x0 + dx * step_x, y0 + dy * g.row_h
                if free.fits((x, y, w, h), own):
                    return x, y
    # nothing free nearby: below everything
    bottom = max((r[1] + r[3] for r in free.cards.rects.values()), default=y0)
    return x0, bottom + g.component_gap


def _islands(snapshot: SnapshotLike, new: set[str]) -> set[str]:
    """New nodes in connected parts that contain no kept node."""
    nbrs: dict[str, list[str]] = {}
    for e in snapshot.edges:
        nbrs.setdefault(e.parent, []).append(e.child)
        nbrs.setdefault(e.child, []).append(e.parent)
    out: set[str] = set()
    seen: set[str] = set()
    for k in new:
        if k in seen:
            continue
        part, stack, clean = [], [k], True
        seen.add(k)
        while stack:
            v = stack.pop()
            part.append(v)
            for n in nbrs.get(v, ()):
                if n not in new:
                    clean = False
                elif n not in seen:
                    seen.add(n)
                    stack.append(n)
        if clean:
            out.update(part)
    return out


class _Sub:
    """The part of a snapshot made of some of its nodes (for laying islands out)."""

    def __init__(self, snapshot: SnapshotLike, keys: set[str]) -> None:
        self.nodes = {k: n for k, n in snapshot.nodes.items() if k in keys}
        self.edges = [e for e in snapshot.edges if e.parent in keys and e.child in keys]


def _place_islands(snapshot: SnapshotLike, islands: set[str], pos: dict[str, Point],
                   free: _Free, g: Geometry, aspect: float, size: Any) -> None:
    """Lay the new parts out on their own and put them, as one block, into the first
    free place of the picture in reading order (or beside / below it)."""
    sub = draw(_Sub(snapshot, islands), g, aspect)
    block = union(list(sub.rects.values()))
    margin = g.frame_pad + g.frame_label_h if sub.frames else 0.0
    bx, by, bw, bh = block
    need = (bw + 2 * margin, bh + 2 * margin)
    cards = [(*p, *size(k)) for k, p in pos.items()]
    left, top, width, height = union(cards)
    step = g.node_w + g.col_gap
    spot: Point | None = None
    y = top
    while spot is None and y + need[1] <= top + height:
        x = left
        while x + need[0] <= left + width:
            if free.fits((x, y, need[0], need[1])):
                spot = (x, y)
                break
            x += step
        y += g.row_h
    if spot is None:
        gap = g.component_gap
        spot = ((left, top + height + gap) if width / max(height, 1.0) > aspect
                else (left + width + gap, top))
    dx, dy = spot[0] + margin - bx, spot[1] + margin - by
    for k, (x, y, _w, _h) in sub.rects.items():
        pos[k] = (x + dx, y + dy)
        free.add(k, (x + dx, y + dy, *size(k)))

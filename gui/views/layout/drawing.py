"""The whole picture from a snapshot: parts laid out, framed by VM, packed, routed.

:func:`draw` is what the canvas, ``blockgraph render``, the compare view and the
offline view all call for a fresh layout, so they show the same picture:

* every connected part is a layered drawing (:mod:`~gui.views.layout.layered`);
* the parts a VM uses (its block backends: the peer's devices, or the VM a peer
  names) are packed together inside a labelled frame;
* frames and parts without a VM are packed largest first into a picture whose
  width / height follows ``aspect`` (the viewport's, or the export page's);
* the few links the layered drawing cannot draw (a cycle's back link) are routed
  around the cards afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gui.views.layout.geometry import DEFAULT_GEOMETRY, Geometry, Point, Rect
from gui.views.layout.layered import EdgeKey, Part, lay_out_part
from gui.views.layout.packing import pack
from gui.views.layout.routing import RectIndex, Router
from gui.views.layout.structure import (
    SnapshotLike,
    Structure,
    analyse,
    components,
    ranks,
    vm_label,
)

#: a 16:10 screen, when nobody says otherwise
DEFAULT_ASPECT = 1.6


@dataclass(frozen=True, slots=True)
class Frame:
    """A labelled frame around the parts of the graph one VM uses."""

    label: str
    rect: Rect
    keys: tuple[str, ...]  # the nodes inside


@dataclass(slots=True)
class Drawing:
    """Cards (top-left corner and size), links (the corner points of each path) and
    VM frames, in scene coordinates."""

    rects: dict[str, Rect]
    paths: dict[EdgeKey, list[Point]]
    frames: list[Frame] = field(default_factory=list)

    def positions(self) -> dict[str, Point]:
        return {k: (x, y) for k, (x, y, _w, _h) in self.rects.items()}


def _links_by_part(snapshot: SnapshotLike, parts_keys: list[list[str]],
                   beside_of: dict[str, str]) -> list[list[object]]:
    """Each connected part's links (a card beside another belongs to that one's part)."""
    edges_of: list[list[object]] = [[] for _ in parts_keys]
    part_of: dict[str, int] = {}
    for i, keys in enumerate(parts_keys):
        for k in keys:
            part_of[k] = i
    for k, owner in beside_of.items():
        part_of[k] = part_of[owner]
    for e in snapshot.edges:
        part = part_of.get(e.parent)
        if part is not None:
            edges_of[part].append(e)
    return edges_of


def draw(snapshot: SnapshotLike, geometry: Geometry = DEFAULT_GEOMETRY,
         aspect: float = DEFAULT_ASPECT, structure: Structure | None = None) -> Drawing:
    """Lay out, frame, pack and route the whole graph from scratch."""
    g = geometry
    st = structure or analyse(snapshot)
    nodes = snapshot.nodes
    if not nodes:
        return Drawing({}, {})
    rank = ranks(st)
    beside_of = st.beside_of

    sizes = {k: g.size(getattr(n, "kind", "block-node"), k in beside_of)
             for k, n in nodes.items()}
    size = sizes.__getitem__

    parts_keys = components(st)
    edges_of = _links_by_part(snapshot, parts_keys, beside_of)
    parts = [lay_out_part(keys, st, rank, edges_of[i], size, g)
             for i, keys in enumerate(parts_keys)]
    # -- VM frames: the parts of one VM packed together, a label strip on top
    groups: dict[str, list[int]] = {}
    loose: list[int] = []
    for i, keys in enumerate(parts_keys):
        label = vm_label(snapshot, keys)
        if label:
            groups.setdefault(label, []).append(i)
        else:
            loose.append(i)
    boxes: list[tuple[float, float]] = []
    contents: list[tuple[str, list[int], list[Point]]] = []
    pad, label_h = g.frame_pad, g.frame_label_h
    for label, members in groups.items():
        inner, w, h = pack([(parts[i].width, parts[i].height) for i in members], aspect,
                           g.component_gap)
        boxes.append((w + 2 * pad, h + 2 * pad + label_h))
        contents.append((label, members, [(x + pad, y + pad + label_h) for x, y in inner]))
    for i in loose:
        boxes.append((parts[i].width, parts[i].height))
        contents.append(("", [i], [(0.0, 0.0)]))
    places, _w, _h = pack(boxes, aspect, g.component_gap)
    drawing = Drawing({}, {})
    for (bx, by), (bw, bh), (label, members, inner) in zip(places, boxes, contents,
                                                           strict=True):
        member_keys: list[str] = []
        for i, (ix, iy) in zip(members, inner, strict=True):
            _place(drawing, parts[i], bx + ix, by + iy)
            member_keys.extend(parts[i].rects)
        if label:
            drawing.frames.append(Frame(label, (bx, by, bw, bh), tuple(member_keys)))
    unrouted = [ek for part in parts for ek in part.unrouted]
    if unrouted:
        router = Router(RectIndex(drawing.rects))
        for parent, role, child in unrouted:
            drawing.paths[(parent, role, child)] = router.route(parent, child)
    return drawing


def _place(drawing: Drawing, part: Part, dx: float, dy: float) -> None:
    for k, (x, y, w, h) in part.rects.items():
        drawing.rects[k] = (x + dx, y + dy, w, h)
    for ek, pts in part.paths.items():
        drawing.paths[ek] = [(x + dx, y + dy) for x, y in pts]


def full_layout(snapshot: SnapshotLike, geometry: Geometry = DEFAULT_GEOMETRY,
                structure: Structure | None = None,
                aspect: float = DEFAULT_ASPECT) -> dict[str, Point]:
    """Lay out every node from scratch; returns the top-left corner of each card."""
    return draw(snapshot, geometry, aspect, structure).positions()


def frame_rect(rects: Sequence[Rect], g: Geometry = DEFAULT_GEOMETRY) -> Rect:
    """The frame around cards (its margin and label strip), as :func:`draw` makes it."""
    left = min(r[0] for r in rects)
    top = min(r[1] for r in rects)
    right = max(r[0] + r[2] for r in rects)
    bottom = max(r[1] + r[3] for r in rects)
    pad = g.frame_pad
    return (left - pad, top - pad - g.frame_label_h, right - left + 2 * pad,
            bottom - top + 2 * pad + g.frame_label_h)

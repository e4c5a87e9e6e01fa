"""Automatic layout of a block graph: snapshot in, cards and link paths out.

Pure and Qt-free, so the canvas, ``blockgraph render``, the compare and offline
views and the benchmarks share it and it is unit-tested without a display.

* :func:`draw` lays the whole graph out from scratch: each connected part layered
  (overlays above their backing, crossings reduced, links in free space), the parts
  of one VM framed together, everything packed to the viewport's shape.
* :func:`layout` keeps every card that survives a change where it was and places
  only new ones, into free space next to the node they attach to.
* :class:`Router` draws links around cards when cards moved after a layout.
* :mod:`~gui.views.layout.quality` measures a drawing (overlaps, links through
  cards, crossings, shape) for tests and benchmarks.
"""

from gui.views.layout.drawing import DEFAULT_ASPECT, Drawing, Frame, draw, full_layout
from gui.views.layout.geometry import DEFAULT_GEOMETRY, Geometry, Point, Rect
from gui.views.layout.incremental import layout
from gui.views.layout.layered import EdgeKey
from gui.views.layout.routing import RectIndex, Router, rounded
from gui.views.layout.structure import SnapshotLike, Structure, analyse, components, ranks

__all__ = [
    "DEFAULT_ASPECT",
    "DEFAULT_GEOMETRY",
    "Drawing",
    "EdgeKey",
    "Frame",
    "Geometry",
    "Point",
    "Rect",
    "RectIndex",
    "Router",
    "SnapshotLike",
    "Structure",
    "analyse",
    "components",
    "draw",
    "full_layout",
    "layout",
    "ranks",
    "rounded",
]

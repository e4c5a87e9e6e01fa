"""Which ranges a node's image allocates itself, read from the image file on this machine.

QMP has no command that reports one layer's allocation (``query-block`` and the dirty
bitmaps say other things), so the consequence preview (:mod:`gui.planner.consequences`)
reads the image files named in the graph with the bundled image code, as
``qemu-img map`` would. A file that cannot be read here — a peer on another host, a
protocol other than a local file, an image whose size differs from what the peer
reports (so not the same image) — gives None: its layer's counts are unknown, and the
preview says so.

A qcow2 layer allocates its data and zero clusters (both hide what is below them); a
raw image, or a protocol node read directly, allocates its whole size (nothing is below
it).
"""

from __future__ import annotations

import os

from engine.formats import open_image
from engine.formats.image import UNALLOCATED
from engine.graph.drivers import ENGINE_IMAGE_DRIVERS
from engine.graph.snapshot import GraphSnapshot
from gui.planner.consequences import Range
from gui.planner.readers import image_path

#: protocol drivers that are a plain local file
_FILE_PROTOCOLS = frozenset({"file", "host_device", "host_cdrom"})


class NotReadableHere(Exception):
    """The layer's allocation cannot be read on this machine; the text says why."""


def local_allocation(graph: GraphSnapshot, key: str) -> list[Range]:
    """The ranges ``key``'s image allocates itself, from the file on this machine.

    Raises :class:`NotReadableHere` (or what opening the image raises) when it cannot
    be read here; the consequence preview then calls the counts unknown.
    """
    node = graph.nodes[key]
    fmt = "raw" if node.driver in _FILE_PROTOCOLS else node.driver
    if fmt not in ENGINE_IMAGE_DRIVERS:
        raise NotReadableHere(f"the {node.driver} driver's allocation is not read here")
    path = image_path(graph, key)
    if not path or not os.path.isfile(path):
        raise NotReadableHere(f"no file {path or '(unnamed)'} on this machine")
    image = open_image(path, fmt)
    try:
        size = image.virtual_size
        if node.virtual_size is not None and node.virtual_size != size:
            raise NotReadableHere(f"{path} here is {size} bytes, the peer's node "
                                  f"{node.virtual_size}: not the same image")
        if fmt == "raw":
            return [(0, size)] if size else []
        return [(e.start, e.end) for e in image.block_status(0, size)
                if e.state != UNALLOCATED]
    finally:
        image.close()

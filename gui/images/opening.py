"""An image file on this machine as an :class:`AddImage` intent: its format and a node name.

The format comes from the image's header (:func:`engine.formats.open_image` probes it,
as QEMU does when no driver is given); the node name from the file's name, made valid
for QMP (a letter first, at most 31 characters) and, where a graph is given, free in it.
"""

from __future__ import annotations

import os
from collections.abc import Container
from pathlib import Path

from engine.formats import open_image
from gui.planner.intents import AddImage

#: QEMU's limit on node names (and the suffix room left when one is taken)
MAX_NAME = 31


def probe_format(path: str) -> str:
    """The image's format (``qcow2``, ``raw``), read from its header.

    Raises what opening the file raises (``ImageError``, ``OSError``), with the reason.
    """
    img = open_image(path)
    try:
        return str(img.format)
    finally:
        img.close()


def node_name_for(path: str, index: int) -> str:
    """A valid node name from the file's name; ``index`` makes one for a name that does
    not start with a letter (``img0-2024``)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(path).stem)
    if not stem or not stem[0].isalpha():
        stem = f"img{index}-{stem}".rstrip("-")
    return stem[:MAX_NAME]


def free_node_name(path: str, taken: Container[str]) -> str:
    """:func:`node_name_for` the file, numbered (``disk-2``, ``disk-3``…) until not in ``taken``."""
    base = node_name_for(path, 0)
    name, n = base, 2
    while name in taken:
        name = f"{base[:28]}-{n}"
        n += 1
    return name


def add_image(path: str, name: str) -> AddImage:
    """The intent that opens ``path`` (with its backing chain) as node ``name``."""
    return AddImage(name, os.path.abspath(path), probe_format(path))

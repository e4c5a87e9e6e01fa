"""``drive-mirror``'s target: the image file it creates (``absolute-paths``) and the node it
opens on the file, as QEMU 7.2's qmp_drive_mirror does.

The target is created with the source's size: without a backing file for ``sync``
``full`` (or a source without one), else naming the source's backing (``top``) or the
source itself (``none``). It is opened without its backing chain, read-write, in the
source's format unless ``format`` says otherwise (``existing`` without a format:
probed). Every check before the first write (format, backing name, image locks)
comes first, so a refused command leaves an existing file as it was.
"""

from __future__ import annotations

from typing import Any

from engine.formats.hostfile import HostFile
from engine.graph.model import BlockGraph, Node
from engine.graph.opening import open_node, options_for_filename
from engine.jobs.graphops import skip_filters


def target_backing(graph: BlockGraph, source: Node, sync: str) -> Node | None:
    """The node the new target names as its backing file (None: no backing file)."""
    if sync == "none":
        return source
    below = skip_filters(source)
    return skip_filters(below.child("backing")) if below is not None else None


def open_target(graph: BlockGraph, filename: str, fmt: str | None, node_name: str | None,
                opened: dict[str, HostFile]) -> Node:
    """Open the target read-write without its backing chain, the file name parsed as
    QEMU parses any (``json:{...}``, ``blkdebug:CONFIG:IMAGE``, ``file:``...)."""
    options: dict[str, Any] = options_for_filename(filename, fmt)
    options["read-only"] = False
    if node_name is not None:
        options["node-name"] = node_name
    return open_node(graph, options, inherited={}, role=None, header_backing=False,
                     opened=opened)


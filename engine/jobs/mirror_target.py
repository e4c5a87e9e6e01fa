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

import os
from typing import Any

from engine.formats.backing_names import strip_file_protocol
from engine.formats.create import format_qcow2
from engine.formats.errors import ImageError
from engine.formats.hostfile import HostFile
from engine.graph import rules
from engine.graph.model import BlockGraph, Node
from engine.graph.opening import PROBE, open_node
from engine.graph.permcheck import lock_conflict_with
from engine.jobs.create import FILE_CREATE_PERMS
from engine.jobs.errors import JobCommandError
from engine.jobs.graphops import node_filename, skip_filters


def target_backing(graph: BlockGraph, source: Node, sync: str) -> Node | None:
    """The node the new target names as its backing file (None: no backing file)."""
    if sync == "none":
        return source
    below = skip_filters(source)
    return skip_filters(below.child("backing")) if below is not None else None


def create_target(graph: BlockGraph, filename: str, fmt: str, size: int,
                  backing: Node | None) -> HostFile:
    """Create and format the target image; returned open (QEMU's bdrv_img_create)."""
    backing_name = node_filename(backing) if backing is not None else None
    rules.check_image_create(fmt, filename, backing_name)
    host_name = strip_file_protocol(filename) or filename
    try:
        store = graph.hostfs.create(host_name)
    except OSError as exc:
        raise JobCommandError(f"Could not create '{host_name}': {exc.strerror}") from exc
    try:
        conflict = lock_conflict_with(graph, store.identity(), *FILE_CREATE_PERMS)
    except BaseException:
        graph.hostfs.discard(store, emptied=False)
        raise
    if conflict:
        graph.hostfs.discard(store, emptied=False)
        raise JobCommandError(conflict)
    try:
        if fmt == "qcow2":
            format_qcow2(store, size, backing_file=backing_name,
                         backing_format=backing.driver if backing is not None else None,
                         probe_backing=False)
        else:
            store.truncate(0)
            store.truncate(size)
    except BaseException as exc:
        graph.hostfs.discard(store, emptied=True)
        if isinstance(exc, ImageError):
            raise JobCommandError(str(exc)) from exc
        if isinstance(exc, OSError):
            raise JobCommandError(
                f"Could not create '{host_name}': {os.strerror(exc.errno or 0)}") from exc
        raise
    return store


def open_target(graph: BlockGraph, filename: str, fmt: str | None, node_name: str | None,
                opened: dict[str, HostFile]) -> Node:
    """Open the target read-write without its backing chain."""
    host_name = strip_file_protocol(filename) or filename
    options: dict[str, Any] = {"driver": fmt or PROBE, "read-only": False,
                               "file": {"driver": "file", "filename": host_name}}
    if node_name is not None:
        options["node-name"] = node_name
    return open_node(graph, options, inherited={}, role=None, header_backing=False,
                     opened=opened)


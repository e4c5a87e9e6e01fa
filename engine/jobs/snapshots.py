"""External snapshots: the work of blockdev-snapshot and blockdev-snapshot-sync.

A snapshot puts an overlay above a node: every parent of the node (exports,
devices, filters, overlays) moves to the overlay, the node becomes the overlay's
backing child and is reopened read-only. ``blockdev-snapshot`` takes an overlay
that already exists; ``blockdev-snapshot-sync`` creates the image file (backing
string = the node's filename, format = its driver) and opens it — that overlay
is not monitor-owned and lives only through the parents it took over.

Their QMP commands and ``transaction`` are in :mod:`engine.qmp.commands_snapshot`.
Checks and texts follow QEMU 7.2 (``external_snapshot_prepare``).
"""

from __future__ import annotations

import os
from typing import Any

from engine.formats.backing_names import strip_file_protocol
from engine.formats.create import format_qcow2
from engine.formats.errors import ImageError
from engine.formats.hostfile import HostFile
from engine.graph import rules
from engine.graph.model import BlockGraph, Node, virtual_size
from engine.graph.opening import open_node
from engine.graph.permcheck import lock_conflict_with
from engine.jobs.create import FILE_CREATE_PERMS
from engine.jobs.errors import JobCommandError
from engine.jobs.graphops import node_filename, set_read_only

BACKING_DRIVERS = rules.BACKING_DRIVERS

def append_overlay(graph: BlockGraph, node: Node, overlay: Node) -> None:
    """QEMU's bdrv_append + the read-only reopen of the old node (checks done by callers)."""
    if rules.reaches(graph, node.name, overlay.name):
        raise rules.CycleViolation(node.name, "backing", overlay.name)
    graph.insert_filter_above(overlay, node, "backing")
    graph.refresh_perms([overlay])
    set_read_only(graph, node, True)


def snapshot(graph: BlockGraph, args: dict[str, Any]) -> None:
    """blockdev-snapshot, inside the caller's graph transaction."""
    node = graph.nodes[rules.check_snapshot_node(graph, args["node"])]
    overlay = graph.nodes[rules.lookup_bs(graph, args["overlay"], args["overlay"])]
    rules.check_overlay(graph, overlay.name)
    append_overlay(graph, node, overlay)


def snapshot_sync(graph: BlockGraph, args: dict[str, Any]) -> None:
    """blockdev-snapshot-sync, inside the caller's graph transaction.

    Every check QEMU makes before it writes the new file comes first (node, names,
    format, the backing name, the image locks of the engine's own nodes); only then
    is the file truncated and formatted, from the descriptor that created it, and the
    overlay opened on that same descriptor.
    """
    device, node_name = args.get("device"), args.get("node-name")
    node = graph.nodes[rules.check_snapshot_source(graph, device, node_name)]
    new_name = args.get("snapshot-node-name")
    rules.check_overlay_name(graph, node_name, new_name)
    fmt = args.get("format", "qcow2")
    filename = args["snapshot-file"]
    host_name = strip_file_protocol(filename) or filename
    opened: dict[str, HostFile] = {}
    if args.get("mode", "absolute-paths") != "existing":
        opened[host_name] = create_overlay_file(graph, node, filename, fmt)
    try:
        options: dict[str, Any] = {"driver": fmt,
                                   "file": {"driver": "file", "filename": host_name}}
        if fmt in BACKING_DRIVERS:
            options["backing"] = None
        if new_name is not None:
            options["node-name"] = new_name
        overlay = open_node(graph, options, inherited={}, role=None, opened=opened)
    finally:
        for leftover in opened.values():     # not taken by a node (it failed first)
            leftover.close()
    rules.check_overlay(graph, overlay.name)
    append_overlay(graph, node, overlay)
    if not overlay.parents:
        graph.release(overlay)


def create_overlay_file(graph: BlockGraph, node: Node, filename: str, fmt: str) -> HostFile:
    """The new overlay's file, checked, created and formatted; returned open."""
    return create_image(graph, filename, fmt, virtual_size(node), node)


def create_image(graph: BlockGraph, filename: str, fmt: str, size: int,
                 backing: Node | None) -> HostFile:
    """Check, create and format an image file over ``backing`` (QEMU's bdrv_img_create,
    for an external snapshot's overlay and a mirror's target); returned open."""
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
    if conflict:                  # nothing written: a file that was there stays as it is
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
    except BaseException as exc:  # a full disk: no half-written image is left behind
        graph.hostfs.discard(store, emptied=True)
        if isinstance(exc, ImageError):
            raise JobCommandError(str(exc)) from exc
        if isinstance(exc, OSError):
            raise JobCommandError(
                f"Could not create '{host_name}': {os.strerror(exc.errno or 0)}") from exc
        raise
    return store

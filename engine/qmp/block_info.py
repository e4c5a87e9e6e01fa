"""QMP views of the graph: BlockDeviceInfo, ImageInfo, the x-debug graph, BlockInfo.

Members are inserted in QAPI declaration order and the results returned in QEMU's
QDict member order (:func:`engine.qmp.qdict.qdict_sorted`), so replies match QEMU's
byte for byte once serialised with QEMU's separators.
"""

from __future__ import annotations

import os
from typing import Any

from engine.graph import perms as P
from engine.graph.filenames import all_filenames, filename
from engine.graph.model import JOB_FILTER_DRIVERS, Backend, BlockGraph, Node, virtual_size
from engine.graph.opening import full_backing_path
from engine.qmp.qdict import QEMUOrdered, qdict_order, qdict_sorted


def image_info(node: Node, memo: dict[str, str], *, chain: bool) -> dict[str, Any]:
    """ImageInfo of one node (with ``backing-image`` recursively when ``chain``)."""
    info: dict[str, Any] = {"filename": filename(node, memo), "format": node.driver}
    img = node.image
    raw_info = _format_info(img)
    data_node = _data_node(node)
    if node.driver not in ("null-co", "null-aio"):
        info["dirty-flag"] = bool(raw_info.get("dirty-flag", False))
    info["actual-size"] = _actual_size(data_node)
    info["virtual-size"] = virtual_size(node)
    cluster = getattr(img, "cluster_size", None) if img is not None else None
    if cluster is None and node.driver in JOB_FILTER_DRIVERS | {"raw", "throttle"}:
        below = node.child("file")
        cluster = getattr(below.image, "cluster_size", None) if below and below.image else None
    if cluster:
        info["cluster-size"] = cluster
    if node.header_backing:
        info["backing-filename"] = node.header_backing
        info["full-backing-filename"] = full_backing_path(node)
        if node.header_backing_format:
            info["backing-filename-format"] = node.header_backing_format
    if chain:
        below = _backing_or_filtered(node)
        if below is not None:
            info["backing-image"] = image_info(below, memo, chain=True)
    if "format-specific" in raw_info and node.driver == "qcow2":
        info["format-specific"] = qdict_sorted(raw_info["format-specific"])
    return ordered(info)


def ordered(info: dict[str, Any]) -> dict[str, Any]:
    """One level of a reply in QEMU's member order (nested values already ordered).

    Marked :class:`QEMUOrdered` so the QMP server writes it as it is.
    """
    return QEMUOrdered((k, info[k]) for k in qdict_order(info))


def _format_info(img: Any) -> dict[str, Any]:
    """dirty-flag and format-specific data of an opened image (cheaply when possible)."""
    if img is None:
        return {}
    try:
        header = getattr(img, "header", None)
        specific = getattr(img, "format_specific", None)
        if header is not None and specific is not None:
            return {"dirty-flag": bool(header.dirty), "format-specific": specific()}
        return dict(img.info())
    except Exception:   # a damaged image still gets a listing, as in QEMU
        return {}


def _data_node(node: Node) -> Node:
    seen = 0
    while seen < 64:
        if node.driver == "file" or node.driver in ("null-co", "null-aio"):
            return node
        below = node.child("file")
        if below is None:
            return node
        node = below
        seen += 1
    return node


def _actual_size(node: Node) -> int:
    if node.host_path is not None:
        try:
            return os.stat(node.host_path).st_blocks * 512
        except OSError:
            return 0
    return 0


def _backing_or_filtered(node: Node) -> Node | None:
    backing = node.child("backing")
    if backing is not None:
        return backing
    if node.driver in JOB_FILTER_DRIVERS or node.driver in ("throttle", "preallocate",
                                                            "compress"):
        return node.child("file")
    if node.driver == "raw" and not node.options:
        return None
    return None


def backing_depth(node: Node) -> int:
    depth = 0
    current = _backing_or_filtered(node)
    while current is not None and depth < 10000:
        depth += 1
        current = _backing_or_filtered(current)
    return depth


def block_device_info(node: Node, memo: dict[str, str], *, flat: bool) -> dict[str, Any]:
    """BlockDeviceInfo of a node (``flat``: no backing-image chain, depth 0)."""
    info: dict[str, Any] = {
        "file": filename(node, memo),
        "node-name": node.name,
        "ro": node.read_only,
        "drv": node.driver,
    }
    backing = node.child("backing")
    if backing is not None and node.driver not in ("commit_top", "mirror_top"):
        # a filter's backing child is not a COW backing: QEMU reports none
        info["backing_file"] = filename(backing, memo)
    info.update({
        "backing_file_depth": 0 if flat else backing_depth(node),
        "encrypted": False,
        "detect_zeroes": node.detect_zeroes,
        "bps": 0, "bps_rd": 0, "bps_wr": 0, "iops": 0, "iops_rd": 0, "iops_wr": 0,
        "image": image_info(node, memo, chain=not flat),
        "cache": ordered({"writeback": True, "direct": node.cache_direct,
                          "no-flush": node.cache_no_flush}),
        "write_threshold": node.write_threshold,
    })
    return ordered(info)


def query_named_block_nodes(graph: BlockGraph, flat: bool) -> list[dict[str, Any]]:
    memo = all_filenames(graph)
    return [block_device_info(n, memo, flat=flat) for n in reversed(graph.nodes.values())]


def debug_block_graph(graph: BlockGraph) -> dict[str, Any]:
    """``x-debug-query-block-graph``: ids by first encounter, arrays newest first."""
    ids: dict[int, int] = {}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []

    def ident(obj: object) -> int:
        key = id(obj)
        if key not in ids:
            ids[key] = len(ids) + 1
        return ids[key]

    def visit(obj: Backend | Node | Any, name: str, kind: str, links: list[Any]) -> None:
        nodes.append({"id": ident(obj), "type": kind, "name": name})
        for link in links:
            edges.append({"parent": ident(obj), "child": ident(link.child), "name": link.role,
                          "perm": list(P.qmp_names(link.perm)),
                          "shared-perm": list(P.qmp_names(link.shared))})

    for b in graph.backends.values():
        visit(b, b.debug_name, "block-backend", [b.root] if b.root else [])
    for job in graph.jobs.values():
        visit(job, job.job_id, "block-job", list(reversed(job.links)))
    for n in graph.nodes.values():
        visit(n, n.name, "block-driver", list(reversed(list(n.children.values()))))
    return qdict_sorted({"nodes": list(reversed(nodes)), "edges": list(reversed(edges))})


def block_info(graph: BlockGraph, backend: Backend) -> dict[str, Any]:
    """BlockInfo (``query-block``) of a named backend."""
    info: dict[str, Any] = {"device": backend.name}
    if backend.qdev:
        info["qdev"] = backend.qdev
    info["type"] = "unknown"
    info["removable"] = backend.removable
    info["locked"] = backend.locked
    if backend.root is not None:
        root = backend.root.child
        while root.implicit and root.child("file") is not None:
            root = root.child("file")  # type: ignore[assignment]
        info["inserted"] = block_device_info(root, all_filenames(graph), flat=False)
    if backend.removable:
        info["tray_open"] = backend.tray_open
    if backend.device_kind == "device":
        info["io-status"] = "ok"
    return ordered(info)

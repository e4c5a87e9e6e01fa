"""QMP views of the graph: BlockDeviceInfo, ImageInfo, the x-debug graph, BlockInfo.

Members are inserted in QAPI declaration order and the results returned in QEMU's
QDict member order (:func:`engine.qmp.qdict.qdict_sorted`), so replies match QEMU's
byte for byte once serialised with QEMU's separators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.graph import perms as P
from engine.graph.filenames import all_filenames, filename, full_backing_name
from engine.graph.model import Backend, BlockGraph, Node, virtual_size
from engine.qdict import QEMUOrdered, qdict_order, qdict_sorted


def image_info(node: Node, memo: dict[str, Any], *, chain: bool,
               chains: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """ImageInfo of one node (with ``backing-image`` for each node below when ``chain``).

    Built bottom-up without recursion: a chain may be thousands of nodes deep. With
    ``chains`` the ImageInfo of a node with its chain below is computed once and
    shared by every node above it (a reply object, never changed afterwards), so
    listing every node of a deep chain takes linear time.
    """
    if not chain:
        return _one_image_info(node, memo, None)
    cache = chains if chains is not None else {}
    levels: list[Node] = []
    current: Node | None = node
    while current is not None and current.name not in cache:
        levels.append(current)
        current = _backing_or_filtered(current)
    below = cache[current.name] if current is not None else None
    for level in reversed(levels):
        below = cache[level.name] = _one_image_info(level, memo, below)
    return cache[node.name]


def _one_image_info(node: Node, memo: dict[str, Any],
                    backing_image: dict[str, Any] | None) -> dict[str, Any]:
    info: dict[str, Any] = {"filename": filename(node, memo), "format": node.driver}
    img = node.image
    raw_info = _format_info(img)
    if _info_driver(node) not in ("null-co", "null-aio", "quorum"):   # no bdrv_get_info
        info["dirty-flag"] = bool(raw_info.get("dirty-flag", False))
    info["actual-size"] = _actual_size(node)
    info["virtual-size"] = virtual_size(node)
    cluster = _cluster_size(node)
    if cluster:
        info["cluster-size"] = cluster
    if node.header_backing:
        info["backing-filename"] = node.header_backing
        try:
            full = full_backing_name(node, names=memo)
        except ValueError:
            full = None
        if full is not None:
            info["full-backing-filename"] = full
        if node.header_backing_format:
            info["backing-filename-format"] = node.header_backing_format
    if backing_image is not None:
        info["backing-image"] = backing_image
    if "format-specific" in raw_info and node.driver == "qcow2":
        info["format-specific"] = qdict_sorted(raw_info["format-specific"])
    return ordered(info)


def _info_driver(node: Node) -> str:
    """The driver whose bdrv_get_info answers for ``node``: filters without their own
    and ``raw`` pass the question to their child."""
    current = node
    while ((current.spec.is_filter and current.spec.filtered_role is not None)
           or current.driver == "raw"):
        link = current.children.get(current.spec.filtered_role or "file")
        if link is None:
            break
        current = link.child
    return current.driver


def _cluster_size(node: Node) -> int | None:
    """bdrv_get_info's cluster size: the format's, or (filters, raw) the child's."""
    if node.io is None:
        return None
    try:
        node.io.refresh()
        return node.io.cluster_size()
    except OSError:
        return None


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


def _actual_size(node: Node) -> int:
    if node.io is None:
        return 0
    try:
        return node.io.actual_size()
    except OSError:
        return 0


def _backing_or_filtered(node: Node) -> Node | None:
    """The node QEMU lists as ``backing-image``: the backing, or a filter's child."""
    backing = node.child("backing")
    if backing is not None:
        return backing
    role = node.spec.filtered_role
    return node.child(role) if role is not None else None


def backing_depth(node: Node, depths: dict[str, int] | None = None) -> int:
    """How many nodes lie below ``node`` (``depths`` caches it for every node seen)."""
    cache = depths if depths is not None else {}
    levels: list[Node] = []
    current: Node | None = node
    while current is not None and current.name not in cache:
        levels.append(current)
        current = _backing_or_filtered(current)
    depth = cache[current.name] + 1 if current is not None else 0
    for level in reversed(levels):
        cache[level.name] = depth
        depth += 1
    return cache[node.name]


@dataclass
class QueryCache:
    """What one query computes once for all nodes: filenames, ImageInfo chains, depths."""

    names: dict[str, Any]
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)


def block_device_info(node: Node, memo: dict[str, Any], *, flat: bool,
                      cache: QueryCache | None = None) -> dict[str, Any]:
    """BlockDeviceInfo of a node (``flat``: no backing-image chain, depth 0)."""
    info: dict[str, Any] = {
        "file": filename(node, memo),
        "node-name": node.name,
        "ro": node.read_only,
        "drv": node.driver,
    }
    backing = node.child("backing")
    if backing is not None and not node.spec.is_filter:
        # a filter's backing child is not a COW backing: QEMU reports none
        info["backing_file"] = filename(backing, memo)
    info.update({
        "backing_file_depth": 0 if flat else backing_depth(
            node, cache.depths if cache is not None else None),
        "encrypted": False,
        "detect_zeroes": node.detect_zeroes,
        "bps": 0, "bps_rd": 0, "bps_wr": 0, "iops": 0, "iops_rd": 0, "iops_wr": 0,
        "image": image_info(node, memo, chain=not flat,
                            chains=cache.chains if cache is not None else None),
        "cache": ordered({"writeback": True, "direct": node.cache_direct,
                          "no-flush": node.cache_no_flush}),
        "write_threshold": node.write_threshold,
    })
    return ordered(info)


def query_named_block_nodes(graph: BlockGraph, flat: bool) -> list[dict[str, Any]]:
    cache = QueryCache(all_filenames(graph))
    return [block_device_info(n, cache.names, flat=flat, cache=cache)
            for n in reversed(graph.nodes.values())]





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

"""``query-blockstats``: BlockStats per device, or per named node with ``query-nodes``.

A device's entry starts at its root, below any filter a job inserted (the user did
not ask for it), and carries the backend's accounting; a node's entry carries only
what the node itself keeps, the end of its highest write. Under each entry,
``parent`` is the node's data-storing child and (devices only) ``backing`` its
filtered or COW child, each described the same way. Members are built in QAPI
declaration order and returned in QEMU's QDict order, as the other queries.
"""

from __future__ import annotations

import time
from typing import Any

from engine.graph.accounting import BlockAcctStats
from engine.graph.model import Backend, BlockGraph, Node
from engine.qmp.block_info import ordered, skip_implicit_filters


def query_blockstats(graph: BlockGraph, query_nodes: bool) -> list[dict[str, Any]]:
    if query_nodes:
        return [node_stats(n, device_level=False) for n in graph.nodes.values()]
    return [device_stats(b) for b in graph.backends.values()
            if b.device_kind == "device" and (b.name or b.qdev)]


def device_stats(backend: Backend) -> dict[str, Any]:
    """One device's BlockStats: its name, qdev id, medium and accounting."""
    root = backend.root.child if backend.root is not None else None
    below = node_stats(root, device_level=True) if root is not None else None
    info: dict[str, Any] = {"device": backend.name}
    if backend.qdev:
        info["qdev"] = backend.qdev
    if below is not None:
        info.update((k, v) for k, v in below.items() if k != "stats")
    highest = below["stats"]["wr_highest_offset"] if below is not None else 0
    info["stats"] = _device_counters(backend.stats, highest)
    return ordered(_in_schema_order(info))


def node_stats(node: Node, *, device_level: bool) -> dict[str, Any]:
    """BlockStats of ``node`` (``device_level``: implicit filters skipped, with
    ``backing``), counters at zero but for the node's wr_highest_offset.

    Iterative: a chain may be thousands of nodes deep."""
    levels: list[tuple[Node, str | None, int]] = []   # node, role under its parent, parent
    work: list[tuple[Node, str | None, int]] = [(node, None, -1)]
    while work:
        current, role, parent = work.pop()
        if device_level:
            current = skip_implicit_filters(current) or current
        index = len(levels)
        levels.append((current, role, parent))
        backing = _filter_or_cow(current) if device_level else None
        if backing is not None:
            work.append((backing, "backing", index))
        data = _data_child(current)
        if data is not None:
            work.append((data, "parent", index))
    built: list[dict[str, Any]] = [{} for _ in levels]
    for index in range(len(levels) - 1, -1, -1):
        current, role, parent = levels[index]
        info = built[index]
        info["node-name"] = current.name
        info["stats"] = _device_counters(_NODE_COUNTERS, current.wr_highest_offset)
        specific = _driver_specific(current)
        if specific is not None:
            info["driver-specific"] = specific
        if role is not None:
            built[parent][role] = ordered(_in_schema_order(info))
    return ordered(_in_schema_order(built[0]))


#: a node keeps no accounting of its own: every counter and flag is zero
_NODE_COUNTERS = BlockAcctStats(account_invalid=False, account_failed=False)

_MEMBERS = ("device", "qdev", "node-name", "stats", "driver-specific", "parent",
            "backing")


def _in_schema_order(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in _MEMBERS if k in info}


def _data_child(node: Node) -> Node | None:
    """QEMU's ``parent``: the primary child when it holds data or is filtered, else
    the one child that holds data (none when several do)."""
    spec = node.spec
    if spec.is_protocol:
        return None
    if spec.is_filter:
        return node.child(spec.filtered_role) if spec.filtered_role else None
    if node.driver == "qcow2" and node.child("data-file") is not None:
        return node.child("data-file")   # its file child holds metadata only
    primary = node.child(spec.child_option)
    if primary is not None and not spec.fans_out:
        return primary
    data = [link.child for role, link in node.children.items() if role != "backing"]
    return data[0] if len(data) == 1 else None


def _filter_or_cow(node: Node) -> Node | None:
    """QEMU's bdrv_filter_or_cow_bs: a filter's filtered child, a format's backing."""
    spec = node.spec
    if spec.is_filter:
        return node.child(spec.filtered_role) if spec.filtered_role else None
    return node.child("backing")


def _driver_specific(node: Node) -> dict[str, Any] | None:
    """The file driver's own figures: its discards (the engine passes none down to a
    host file, as QEMU with the default ``discard=ignore``)."""
    if node.driver != "file":
        return None
    return ordered({"driver": "file", "discard-nb-ok": 0, "discard-nb-failed": 0,
                    "discard-bytes-ok": 0})


def _device_counters(stats: BlockAcctStats, highest: int) -> dict[str, Any]:
    """BlockDeviceStats in QAPI order (7.2's has no zone-append figures; the latency
    histograms appear only once a user asked for them, which the engine does not offer)."""
    info: dict[str, Any] = {
        "rd_bytes": stats.nr_bytes["read"], "wr_bytes": stats.nr_bytes["write"],
        "unmap_bytes": stats.nr_bytes["unmap"],
        "rd_operations": stats.nr_ops["read"], "wr_operations": stats.nr_ops["write"],
        "flush_operations": stats.nr_ops["flush"],
        "unmap_operations": stats.nr_ops["unmap"],
        "rd_total_time_ns": stats.total_time_ns["read"],
        "wr_total_time_ns": stats.total_time_ns["write"],
        "flush_total_time_ns": stats.total_time_ns["flush"],
        "unmap_total_time_ns": stats.total_time_ns["unmap"],
        "wr_highest_offset": highest,
        "rd_merged": stats.merged["read"], "wr_merged": stats.merged["write"],
        "unmap_merged": stats.merged["unmap"],
    }
    if stats.last_access_time_ns > 0:
        info["idle_time_ns"] = time.monotonic_ns() - stats.last_access_time_ns
    for kind, prefix in (("read", "rd"), ("write", "wr"), ("flush", "flush"),
                         ("unmap", "unmap")):
        info[f"failed_{prefix}_operations"] = stats.failed_ops[kind]
    for kind, prefix in (("read", "rd"), ("write", "wr"), ("flush", "flush"),
                         ("unmap", "unmap")):
        info[f"invalid_{prefix}_operations"] = stats.invalid_ops[kind]
    info["account_invalid"] = stats.account_invalid
    info["account_failed"] = stats.account_failed
    info["timed_stats"] = []
    return ordered(info)

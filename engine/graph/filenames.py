"""A node's filename as QEMU reports it: a plain name or a ``json:{...}`` pseudo-name.

Rules (QEMU 7.2, ``bdrv_refresh_filename``): a protocol node's *exact filename* is
its own (``file``: the ``filename`` option; ``null-co``: ``null-co://`` unless a
strong option — ``size`` or ``read-zeroes`` — was given). A format node inherits its
``file`` child's exact filename when it has no strong options of its own (raw:
``offset``/``size``) and its backing is not *overridden*: the backing is overridden
when the attached backing node's filename differs from ``auto_backing_file`` or when
nothing is attached though the header names a backing file. Job filters copy their
child's filename. Everything else is ``json:`` + the node's full options in QEMU's
member order: ``driver``, strong options and one member per child (the backing only
when overridden, ``null`` when detached).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import networkx as nx

from engine.qmp.qdict import qdict_order

if TYPE_CHECKING:
    from engine.graph.model import BlockGraph, Node

#: Options that make a filename "not exact", by driver.
STRONG_OPTIONS = {
    "file": ("filename",),
    "null-co": ("size", "read-zeroes"),
    "null-aio": ("size", "read-zeroes"),
    "raw": ("offset", "size"),
    "throttle": ("throttle-group",),
}
_PASS_FILENAME = frozenset({"commit_top", "mirror_top"})


def all_filenames(graph: BlockGraph) -> dict[str, str]:
    """Every node's filename, computed children first (no deep recursion on long chains)."""
    memo: dict[str, str] = {}
    try:
        order = list(nx.topological_sort(graph.g))
    except nx.NetworkXUnfeasible:   # pragma: no cover - the rules forbid cycles
        order = list(graph.nodes)
    for key in reversed(order):
        node = graph.nodes.get(key)
        if node is not None and filename(node, memo).startswith("json:"):
            options_json(node, memo)
    return memo


def filename(node: Node, memo: dict[str, str]) -> str:
    """The node's reported filename (``memo`` caches results within one query)."""
    cached = memo.get(node.name)
    if cached is not None:
        return cached
    exact = exact_filename(node, memo)
    result = exact if exact else "json:" + options_json(node, memo)
    memo[node.name] = result
    return result


def exact_filename(node: Node, memo: dict[str, str]) -> str | None:
    drv = node.driver
    if drv == "file":
        return str(node.options.get("filename", ""))
    if drv in ("null-co", "null-aio"):
        if any(k in node.options for k in STRONG_OPTIONS[drv]):
            return None
        return f"{drv}://"
    if drv in _PASS_FILENAME or (drv == "copy-on-read" and node.implicit):
        below = node.child("file") or node.child("backing")
        return filename(below, memo) if below is not None else None
    if drv in ("qcow2", "raw", "qcow", "qed", "vmdk", "vdi", "vhdx", "vpc"):
        file_child = node.child("file")
        if file_child is None or not is_protocol(file_child):
            return None
        if any(k in node.options for k in STRONG_OPTIONS.get(drv, ())):
            return None
        if backing_overridden(node, memo):
            return None
        return exact_filename(file_child, memo)
    return None


def is_protocol(node: Node) -> bool:
    from engine.graph.model import PROTOCOL_DRIVERS

    return node.driver in PROTOCOL_DRIVERS


def backing_overridden(node: Node, memo: dict[str, str]) -> bool:
    backing = node.child("backing")
    if backing is not None:
        return filename(backing, memo) != node.auto_backing_file
    return bool(node.header_backing)


def full_options(node: Node, memo: dict[str, str]) -> dict[str, Any]:
    """The node's full options as a dict (for callers that want the structure)."""
    return json.loads(options_json(node, memo))


def options_json(node: Node, memo: dict[str, str]) -> str:
    """JSON text of the node's full options, QEMU member order, QEMU separators.

    Built from the children's (memoised) texts, so a deep chain whose backing links are
    all overridden costs one string join per node and no deep recursion.
    """
    key = "\0options:" + node.name
    cached = memo.get(key)
    if cached is not None:
        return cached
    members: dict[str, str] = {"driver": json.dumps(node.driver)}
    for opt in STRONG_OPTIONS.get(node.driver, ()):
        if opt in node.options:
            members[opt] = json.dumps(node.options[opt])
    for role, link in node.children.items():
        if role != "backing":
            members[role] = options_json(link.child, memo)
    if node.driver not in ("file", "null-co", "null-aio") and backing_overridden(node, memo):
        backing = node.child("backing")
        members["backing"] = options_json(backing, memo) if backing is not None else "null"
    text = "{" + ", ".join(f"{json.dumps(k)}: {members[k]}" for k in qdict_order(members)) + "}"
    memo[key] = text
    return text

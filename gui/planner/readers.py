"""Who reads the graph, through which layers, and what QEMU frees after an edit.

A *reader* is a block backend (a VM's disk, an export) or, where nothing is attached, a
block node that nothing but a job holds; its *layers* are the nodes of data it goes
through, top first, filters skipped. The consequence preview
(:mod:`gui.planner.consequences`) counts bytes per reader along these layers. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.graph.drivers import BACKING_DRIVERS, PASS_THROUGH_DRIVERS
from engine.graph.snapshot import BLOCK_BACKEND, BLOCK_NODE, GraphSnapshot


def image_path(graph: GraphSnapshot, key: str) -> str:
    """The host file behind ``key``: its filename, or its ``file`` child's for json: names."""
    seen = 0
    while key in graph.nodes and seen < 16:
        name = graph.nodes[key].filename
        if name and not name.startswith("json:"):
            return name
        child = graph.child(key, "file")
        if child is None:
            return name
        key, seen = child, seen + 1
    return ""


def _data_child(graph: GraphSnapshot, key: str) -> str | None:
    """Where a filter sends its requests: its file child, else its backing."""
    return graph.child(key, "file") or graph.child(key, "backing")


def layers_from(graph: GraphSnapshot, key: str | None) -> list[str]:
    """The layers of data a reader of ``key`` goes through, top first (filters skipped)."""
    out: list[str] = []
    seen: set[str] = set()
    while key is not None and key in graph.nodes and key not in seen:
        seen.add(key)
        node = graph.nodes[key]
        if node.driver in PASS_THROUGH_DRIVERS or node.implicit:
            key = _data_child(graph, key)
            continue
        out.append(key)
        if node.driver not in BACKING_DRIVERS:
            break
        key = graph.backing(key)
    return out


def layers_below(graph: GraphSnapshot, key: str) -> list[str]:
    """The layers under ``key``'s backing link, top first."""
    node = graph.nodes.get(key)
    if node is None or node.driver not in BACKING_DRIVERS:
        return []
    return layers_from(graph, graph.backing(key))


def readers(graph: GraphSnapshot) -> dict[str, str | None]:
    """Every reader of the graph and the node it reads: backends (by their root), and
    block nodes that nothing but a job holds."""
    out: dict[str, str | None] = {}
    for key, node in graph.nodes.items():
        if node.kind == BLOCK_BACKEND:
            out[key] = graph.child(key, "root")
        elif node.kind == BLOCK_NODE and not any(
                not e.parent.startswith("job:") for e in graph.parents(key)):
            out[key] = key
    return out


def reader_label(graph: GraphSnapshot, key: str) -> str:
    """How a reader is named: a backend by its device (id or QOM path), else the node."""
    node = graph.nodes[key]
    if node.kind != BLOCK_BACKEND:
        return key
    if node.name:
        return f"{node.name} (VM disk)" if not node.name.startswith("/") else node.name
    root = graph.child(key, "root")
    return f"export of {root}" if root else "anonymous backend"


def _inline_names(known: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Node names this client created inside another node's options (they die with it)."""
    names: set[str] = set()

    def walk(value: Any, nested: bool) -> None:
        if isinstance(value, Mapping):
            name = value.get("node-name")
            if nested and isinstance(name, str):
                names.add(name)
            for v in value.values():
                walk(v, True)

    for opts in known.values():
        walk(opts, False)
    return names


def freed_nodes(before: GraphSnapshot, after: GraphSnapshot,
                known: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """Nodes that something held before and nothing holds in ``after``, and that no
    monitor added by name: QEMU deletes them (and then what only they held)."""
    inline = _inline_names(known)
    freed: list[str] = []
    gone: set[str] = set()

    def owned(key: str) -> bool:
        node = after.nodes[key]
        return not node.auto_named and node.name not in inline

    frontier = [k for k, n in after.nodes.items() if n.kind == BLOCK_NODE
                and before.parents(k) and not after.parents(k)]
    while frontier:
        key = frontier.pop(0)
        if key in gone or owned(key):
            continue
        if any(e.parent not in gone for e in after.parents(key)):
            continue
        gone.add(key)
        freed.append(key)
        frontier.extend(e.child for e in after.children(key))
    return tuple(freed)


def without(graph: GraphSnapshot, keys: Iterable[str]) -> GraphSnapshot:
    """``graph`` without the nodes ``keys`` and their links."""
    drop = set(keys)
    return GraphSnapshot([n for k, n in graph.nodes.items() if k not in drop],
                         [e for e in graph.edges if e.parent not in drop
                          and e.child not in drop])

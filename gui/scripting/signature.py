"""A graph described without auto-generated names, to compare graphs from two peers.

Auto node names (``#block123``) carry a counter and random digits, so the same script
run on two peers gives different names. :func:`graph_signature` names every node by
what it is instead — its user-given name, or ``#driver:filename`` for an auto-named one
— and lists nodes (with driver, read-only flag, filename and header backing string)
and edges (parent, role, child) in sorted order. Two graphs with equal signatures have
the same shape, the same images and the same header strings.
"""

from __future__ import annotations

from typing import Any

from engine.graph.snapshot import GraphSnapshot, NodeInfo


def _label(info: NodeInfo) -> str:
    if info.kind == "block-node" and info.auto_named:
        return f"#{info.driver}:{info.filename}"
    return info.key if info.kind != "block-node" else info.name


def graph_signature(snapshot: GraphSnapshot) -> dict[str, Any]:
    labels = {k: _label(n) for k, n in snapshot.nodes.items()}
    nodes = sorted(
        [labels[k], n.kind, n.driver, n.read_only, n.filename, n.header_backing]
        for k, n in snapshot.nodes.items())
    edges = sorted([labels[e.parent], e.role, labels[e.child]] for e in snapshot.edges)
    return {"nodes": nodes, "edges": edges}


def describe_signature(signature: dict[str, Any]) -> list[str]:
    """One line per node and per edge, for printing."""
    lines = []
    for label, kind, driver, ro, filename, header in signature["nodes"]:
        extra = f" header-backing={header}" if header else ""
        lines.append(f"node {label} [{kind} {driver}{' ro' if ro else ''}] {filename}{extra}")
    lines += [f"edge {p} -{role}-> {c}" for p, role, c in signature["edges"]]
    return lines

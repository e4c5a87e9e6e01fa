"""What an edit changed in a graph, in lines a person reads (``blockgraph plan --apply``).

Nodes that came and went (with their driver and file), links that point elsewhere,
and read-only flags that flipped — from two snapshots of the same peer, so names and
auto-generated names compare directly. Job filters that a finished job took away
again, and block backends a job used, are left out: they are the job's, not the edit's.
"""

from __future__ import annotations

from engine.graph.snapshot import GraphSnapshot


def describe_changes(before: GraphSnapshot, after: GraphSnapshot) -> list[str]:
    """One line per change from ``before`` to ``after`` (empty: nothing changed)."""
    out: list[str] = []
    for key in after.nodes:
        node = after.nodes[key]
        if key not in before.nodes and node.kind == "block-node":
            out.append(f"+ node {key} ({node.driver}{_file(node.filename)})")
    for key in before.nodes:
        node = before.nodes[key]
        if key not in after.nodes and node.kind == "block-node":
            out.append(f"- node {key} ({node.driver}{_file(node.filename)})")
    links = {(e.parent, e.role) for e in (*before.edges, *after.edges)
             if e.parent in before.nodes and e.parent in after.nodes
             and not e.parent.startswith("job:")}
    for parent, role in sorted(links):
        old, new = before.child(parent, role), after.child(parent, role)
        if old != new:
            out.append(f"{parent}: {role} {old or '(none)'} -> {new or '(none)'}")
    for key, node in after.nodes.items():
        was = before.nodes.get(key)
        if was is not None and was.kind == "block-node" and was.read_only != node.read_only:
            out.append(f"{key}: {'read-only' if node.read_only else 'read-write'}")
    return out


def _file(filename: str) -> str:
    return f", {filename}" if filename else ""

"""The graph as it will be after link and flag intents, without asking the peer.

Staged edits are checked one after another on the graph the ones before leave, and an
inverse is planned on the graph the edit leaves: both need that graph before anything
is sent. Only links (``backing``) and read-only flags are simulated — the edits a
``blockdev-reopen`` makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.graph.snapshot import EdgeInfo, GraphSnapshot
from gui.planner.intents import DetachBacking, SetBacking, SetReadOnly


def simulate(graph: GraphSnapshot, intents: Sequence[Any]) -> GraphSnapshot:
    """The graph after link/flag intents (for staging and inverse planning)."""
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    for intent in intents:
        match intent:
            case SetBacking(node, backing):
                edges = [e for e in edges if not (e.parent == node and e.role == "backing")]
                edges.append(EdgeInfo(node, backing, "backing"))
            case DetachBacking(node):
                edges = [e for e in edges if not (e.parent == node and e.role == "backing")]
            case SetReadOnly(node, ro):
                nodes[node] = replace(nodes[node], read_only=ro)
                # an auto-named (inline) file child follows its parent, as in QEMU
                for e in edges:
                    if e.parent == node and e.role == "file" and nodes[e.child].auto_named:
                        nodes[e.child] = replace(nodes[e.child], read_only=ro)
    return GraphSnapshot(nodes.values(), edges)

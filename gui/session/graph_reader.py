"""Reading the graph from a peer with the cheapest queries that answer.

Costs on QEMU 7.2 with 1,000 nodes: ``x-debug-query-block-graph`` ~17 ms;
``query-named-block-nodes`` with ``flat: true`` ~1 s; without ``flat`` the reply nests
every backing chain (90 s for a 500-deep chain) — it is never sent. So a refresh asks
the debug graph first and fetches the flat node list only when the debug graph changed,
when an event or the session's own command may have changed node state (read-only,
options), or when forced. ``query-block-jobs`` is asked only while the graph has jobs;
while a job runs and nothing else changed, :func:`read_jobs` asks only that.

Peers without ``x-debug-query-block-graph`` (a custom build) get a graph synthesised
from the flat node list: ``children`` members (QEMU 10.1+) when present, else backing
links matched by filename — so the editor still draws chains.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.graph.snapshot import GraphSnapshot

Query = Callable[[str, Mapping[str, Any] | None], Awaitable[Any]]


@dataclass(slots=True)
class ReadState:
    """What the last read saw, to skip work when nothing changed."""

    debug_key: str | None = None
    debug: Mapping[str, Any] | None = None
    named_nodes: list[Mapping[str, Any]] | None = None
    jobs: list[Mapping[str, Any]] | None = None
    snapshot: GraphSnapshot | None = None


def _debug_key(debug_graph: Mapping[str, Any]) -> str:
    """A comparable form of the debug graph (ids are traversal order; keep them)."""
    return json.dumps(debug_graph, sort_keys=True)


def synthesize_debug_graph(named_nodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An ``x-debug-query-block-graph``-shaped reply built from flat node info alone."""
    ids = {str(n["node-name"]): i + 1 for i, n in enumerate(named_nodes)}
    nodes = [{"id": i, "type": "block-driver", "name": name} for name, i in ids.items()]
    edges: list[dict[str, Any]] = []
    by_filename: dict[str, str] = {}
    for n in named_nodes:
        by_filename.setdefault(str(n.get("file", "")), str(n["node-name"]))
    for n in named_nodes:
        parent = ids[str(n["node-name"])]
        children = n.get("children")
        if isinstance(children, list):
            for c in children:
                child = ids.get(str(c.get("node-name")))
                if child is not None:
                    edges.append({"parent": parent, "child": child, "name": str(c.get("child")),
                                  "perm": [], "shared-perm": []})
            continue
        backing = n.get("backing_file")
        if backing and backing in by_filename and by_filename[backing] != n["node-name"]:
            edges.append({"parent": parent, "child": ids[by_filename[backing]],
                          "name": "backing", "perm": [], "shared-perm": []})
    return {"nodes": nodes, "edges": edges}


async def read_graph(
    query: Query, state: ReadState, *, has_debug_graph: bool, force_nodes: bool
) -> tuple[GraphSnapshot, bool]:
    """Read the peer's graph; returns (snapshot, changed). Updates ``state``.

    ``force_nodes``: fetch the flat node list even if the debug graph is unchanged
    (after own commands and events that can change node state without changing links).
    """
    debug: Mapping[str, Any] | None = None
    if has_debug_graph:
        debug = await query("x-debug-query-block-graph", None)
        key = _debug_key(debug)
        if not force_nodes and key == state.debug_key and state.snapshot is not None:
            return state.snapshot, False
    else:
        key = None
    named = await query("query-named-block-nodes", {"flat": True})
    has_jobs = bool(debug and any(n.get("type") == "block-job" for n in debug.get("nodes", ())))
    jobs = await query("query-block-jobs", None) if has_jobs else []
    if debug is None:
        debug = synthesize_debug_graph(named)
        key = _debug_key(debug)
    snapshot = GraphSnapshot.from_qmp(debug, list(named), list(jobs))
    # node details (cache, detect-zeroes, sizes) live in the raw info the snapshot does
    # not compare, so the flat list itself is compared too
    changed = (state.snapshot is None or snapshot != state.snapshot
               or list(named) != state.named_nodes or list(jobs) != state.jobs)
    state.debug_key, state.debug = key, debug
    state.named_nodes, state.jobs = list(named), list(jobs)
    state.snapshot = snapshot
    return snapshot, changed


async def read_jobs(query: Query, state: ReadState) -> tuple[GraphSnapshot, bool]:
    """Read only the block jobs (their progress) into the graph last read; returns
    (snapshot, changed). The graph itself is not asked for: links and nodes change with
    events, which call for :func:`read_graph`."""
    if state.debug is None or state.named_nodes is None or state.snapshot is None:
        raise ValueError("read the graph before its jobs")
    jobs = list(await query("query-block-jobs", None))
    if jobs == state.jobs:
        return state.snapshot, False
    state.jobs = jobs
    state.snapshot = GraphSnapshot.from_qmp(state.debug, state.named_nodes, jobs)
    return state.snapshot, True

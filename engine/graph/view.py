"""The read-only *graph view* the rules work on.

Both the engine's live :class:`~engine.graph.model.BlockGraph` and an immutable
:class:`~engine.graph.snapshot.GraphSnapshot` (built by the engine or from a remote
QEMU's query replies) implement it, so :mod:`engine.graph.rules` answers the same
way for the engine's own commands and for the editor's preflight.

``node_info`` must fill ``key``, ``kind``, ``name``, ``driver``, ``read_only``,
``implicit`` and ``header_backing``; the live graph leaves ``filename`` and sizes
to :meth:`BlockGraph.snapshot` because the rules never need them. ``nx()`` is the
graph as a networkx MultiDiGraph (parent -> child, key = role) for reachability;
callers must not modify it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import networkx as nx

from engine.graph.snapshot import EdgeInfo, NodeInfo


@runtime_checkable
class GraphView(Protocol):
    def node_info(self, key: str) -> NodeInfo | None: ...

    def child(self, key: str, role: str) -> str | None: ...

    def edge(self, parent: str, role: str) -> EdgeInfo | None: ...

    def children(self, key: str) -> list[EdgeInfo]: ...

    def parents(self, key: str) -> list[EdgeInfo]: ...

    def nx(self) -> nx.MultiDiGraph[str]: ...

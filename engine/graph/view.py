"""The read-only *graph view* the rules work on.

Both the engine's live :class:`~engine.graph.model.BlockGraph` and an immutable
:class:`~engine.graph.snapshot.GraphSnapshot` (built by the engine or from a remote
QEMU's query replies) implement it, so :mod:`engine.graph.rules` answers the same
way for the engine's own commands and for the editor's preflight.

``node_info`` must fill ``key``, ``kind``, ``name``, ``driver``, ``read_only``,
``implicit``, ``header_backing`` and ``auto_backing_file``; the live graph leaves
``filename`` and sizes to :meth:`BlockGraph.snapshot`, as computing a filename costs
a walk down the node's subtree. The rules that match file names (QEMU's
``bdrv_find_backing_image``) ask ``file_names()`` instead: one lookup per rule call,
which remembers what it computed, so a walk down a chain stays linear. ``nx()`` is
the graph as a networkx MultiDiGraph (parent -> child, key = role) for
reachability; callers must not modify it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import networkx as nx

from engine.graph.snapshot import EdgeInfo, NodeInfo


class FileNames(Protocol):
    """A node's names as QEMU's file-name rules see them (keys of block nodes)."""

    def filename(self, key: str) -> str:
        """The node's ``filename`` (``query-named-block-nodes``' ``file``)."""
        ...

    def dirname(self, key: str) -> str | None:
        """QEMU's ``bdrv_dirname`` (with its trailing ``/``), None where it has none."""
        ...

    def backing_overridden(self, key: str) -> bool:
        """The backing attached is not the one the header names (or none is)."""
        ...


@runtime_checkable
class GraphView(Protocol):
    def node_info(self, key: str) -> NodeInfo | None: ...

    def child(self, key: str, role: str) -> str | None: ...

    def edge(self, parent: str, role: str) -> EdgeInfo | None: ...

    def children(self, key: str) -> list[EdgeInfo]: ...

    def parents(self, key: str) -> list[EdgeInfo]: ...

    def nx(self) -> nx.MultiDiGraph[str]: ...

    def file_names(self) -> FileNames: ...

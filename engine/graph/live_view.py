"""The live graph as a *graph view* (:mod:`engine.graph.view`) and as snapshots.

:class:`LiveView` is the part of :class:`~engine.graph.model.BlockGraph` that answers
the read-only questions the rules ask (so they run on the live graph exactly as on a
:class:`~engine.graph.snapshot.GraphSnapshot`) and makes immutable snapshots for the
editor.
"""

from __future__ import annotations

import networkx as nx

from engine.graph import perms as P
from engine.graph.filenames import Names, all_filenames, filename
from engine.graph.nodes import Backend, Child, JobParent, Node, Owner, links_of, virtual_size
from engine.graph.snapshot import (
    BLOCK_BACKEND,
    BLOCK_JOB,
    BLOCK_NODE,
    EdgeInfo,
    GraphSnapshot,
    NodeInfo,
)


class LiveView:
    """Graph-view queries over the live graph's nodes, backends and jobs."""

    nodes: dict[str, Node]
    backends: dict[int, Backend]
    backend_names: dict[str, Backend]
    jobs: dict[str, JobParent]
    g: nx.MultiDiGraph[str]

    def node_info(self, key: str) -> NodeInfo | None:
        node = self.nodes.get(key)
        if node is not None:
            return NodeInfo(key=node.name, kind=BLOCK_NODE, name=node.name, driver=node.driver,
                            read_only=node.read_only, header_backing=node.header_backing,
                            header_backing_format=node.header_backing_format,
                            implicit=node.implicit)
        if key.startswith("backend:"):
            backend = self._backend(key)
            if backend is not None:
                return NodeInfo(key=backend.key, kind=BLOCK_BACKEND, name=backend.debug_name,
                                info={"device": backend.name})
        if key.startswith("job:"):
            job = self.jobs.get(key[4:])
            if job is not None:
                return NodeInfo(key=key, kind=BLOCK_JOB, name=job.job_id, driver=job.job_type)
        return None

    def _node_info(self, node: Node, memo: Names | None) -> NodeInfo:
        img = node.image
        return NodeInfo(
            key=node.name, kind=BLOCK_NODE, name=node.name, driver=node.driver,
            read_only=node.read_only, filename=filename(node, memo if memo is not None else {}),
            virtual_size=virtual_size(node),
            cluster_size=getattr(img, "cluster_size", None),
            header_backing=node.header_backing,
            header_backing_format=node.header_backing_format,
            implicit=node.implicit)

    def _owner(self, key: str) -> Owner | None:
        if key in self.nodes:
            return self.nodes[key]
        if key.startswith("job:"):
            return self.jobs.get(key[4:])
        for b in self.backends.values():
            if b.key == key:
                return b
        return None

    @staticmethod
    def _edge(link: Child) -> EdgeInfo:
        return EdgeInfo(parent=link.parent.key, child=link.child.name, role=link.role,
                        perm=P.qmp_names(link.perm), shared_perm=P.qmp_names(link.shared),
                        frozen=link.frozen)

    def children(self, key: str) -> list[EdgeInfo]:
        owner = self._owner(key)
        if owner is None:
            return []
        return [self._edge(link) for link in links_of(owner)]

    def parents(self, key: str) -> list[EdgeInfo]:
        node = self.nodes.get(key)
        return [self._edge(link) for link in node.parents] if node is not None else []

    def child(self, key: str, role: str) -> str | None:
        node = self.nodes.get(key)
        if node is None:
            if key.startswith("backend:") and role == "root":
                backend = self._backend(key)
                return backend.root.child.name if backend and backend.root else None
            return None
        link = node.children.get(role)
        return link.child.name if link is not None else None

    def _backend(self, key: str) -> Backend | None:
        """A backend by key, or by a name it answers to (drive name or device id)."""
        for b in self.backends.values():
            if b.key == key:
                return b
        return self.backend_names.get(key[len("backend:"):])

    def backing(self, key: str) -> str | None:
        return self.child(key, "backing")

    def edge(self, parent: str, role: str) -> EdgeInfo | None:
        node = self.nodes.get(parent)
        link = node.children.get(role) if node is not None else None
        return self._edge(link) if link is not None else None

    def nx(self) -> nx.MultiDiGraph[str]:
        return self.g

    def snapshot(self) -> GraphSnapshot:
        """The graph now, immutable; nodes newest first, then backends, then jobs."""
        memo = all_filenames(self)
        infos = [self._node_info(n, memo) for n in reversed(self.nodes.values())]
        infos += [NodeInfo(key=b.key, kind=BLOCK_BACKEND, name=b.debug_name)
                  for b in self.backends.values()]
        infos += [NodeInfo(key=j.key, kind=BLOCK_JOB, name=j.job_id, driver=j.job_type)
                  for j in self.jobs.values()]
        owners: list[Owner] = [*self.nodes.values(), *self.backends.values(),
                               *self.jobs.values()]
        edges = [self._edge(link) for owner in owners for link in links_of(owner)]
        return GraphSnapshot(infos, edges)


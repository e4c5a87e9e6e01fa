"""Immutable block-graph snapshots: the one picture of a graph both sides share.

A :class:`GraphSnapshot` is what the editor draws and what the planner's preflight
checks. The bundled engine produces one from its live model
(``BlockGraph.snapshot()``); for a remote QEMU the session builds one from the flat
replies of ``x-debug-query-block-graph``, ``query-named-block-nodes`` and
``query-block-jobs`` with :meth:`GraphSnapshot.from_qmp`. Both are identical in shape,
so the rules in :mod:`engine.graph.rules` run unchanged on either.

Keys: block nodes are keyed by node-name (auto names such as ``#block123`` too),
block backends by ``backend:<name>`` (anonymous ones by ``backend:#<root child key>``),
block jobs by ``job:<id>``.

:meth:`GraphSnapshot.diff` is cheap (dictionary and set comparisons, no graph
algorithms) so a view can update its scene item by item on every refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx

BLOCK_NODE = "block-node"
BLOCK_BACKEND = "block-backend"
BLOCK_JOB = "block-job"

#: Child roles that make up a node's chain of data (used for frozen-link inference).
CHAIN_ROLES = ("backing", "file")


def backend_key(name: str) -> str:
    """The key of the block backend named ``name`` (a device's or a named export's)."""
    return f"backend:{name}"


def anonymous_backend_key(root_key: str) -> str:
    """The key of an anonymous backend (an export's): its root node's key, so that it
    changes when the root does (a commit or snapshot that replaces the root)."""
    return f"backend:#{root_key}"


def is_anonymous_backend(key: str) -> bool:
    """Whether ``key`` names an anonymous backend (see :func:`anonymous_backend_key`)."""
    return key.startswith("backend:#")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One vertex of the graph: a block node, a block backend or a block job."""

    key: str
    kind: str
    name: str
    driver: str = ""
    read_only: bool = False
    filename: str = ""
    virtual_size: int | None = None
    actual_size: int | None = None
    cluster_size: int | None = None
    header_backing: str | None = None
    header_backing_format: str | None = None
    #: QEMU's auto_backing_file: the backing name the header implies once opened (the
    #: header's name, or the filename of the backing opened from it); a backing whose
    #: filename differs is *overridden*. From QMP replies: the image's full backing
    #: name, the nearest fact QEMU reports.
    auto_backing_file: str | None = None
    #: the iothread the vertex runs in ("": the main loop); QMP does not report it
    iothread: str = ""
    implicit: bool = False
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def auto_named(self) -> bool:
        """True for names QEMU generated (``#blockNNN``); those cannot be reopened by name."""
        return self.name.startswith("#")


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    """One child link ``parent --role--> child`` (keys), with its granted permissions.

    ``frozen`` marks a link a running job holds (QEMU refuses to change it); it is
    known exactly in the engine and inferred from job edges in :meth:`GraphSnapshot.from_qmp`.
    """

    parent: str
    child: str
    role: str
    perm: tuple[str, ...] = ()
    shared_perm: tuple[str, ...] = ()
    frozen: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """What changed between two snapshots (keys for nodes, whole edges for edges)."""

    added_nodes: tuple[str, ...] = ()
    removed_nodes: tuple[str, ...] = ()
    changed_nodes: tuple[str, ...] = ()
    added_edges: tuple[EdgeInfo, ...] = ()
    removed_edges: tuple[EdgeInfo, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added_nodes or self.removed_nodes or self.changed_nodes
                    or self.added_edges or self.removed_edges)

    def __bool__(self) -> bool:
        return not self.empty


class GraphSnapshot:
    """An immutable block graph: nodes by key and child edges, with cheap lookups.

    Node order is meaningful: it is the order the source listed them (for the engine
    and ``from_qmp``: newest first, like ``query-named-block-nodes``).
    """

    __slots__ = ("_by_child", "_by_parent", "_edge_set", "_nx", "edges", "nodes")

    nodes: Mapping[str, NodeInfo]
    edges: tuple[EdgeInfo, ...]
    _by_parent: dict[str, list[EdgeInfo]]
    _by_child: dict[str, list[EdgeInfo]]
    _edge_set: frozenset[EdgeInfo] | None
    _nx: nx.MultiDiGraph[str] | None

    def __init__(self, nodes: Iterable[NodeInfo], edges: Iterable[EdgeInfo]) -> None:
        node_map = {n.key: n for n in nodes}
        edge_tuple = tuple(edges)
        by_parent: dict[str, list[EdgeInfo]] = {k: [] for k in node_map}
        by_child: dict[str, list[EdgeInfo]] = {k: [] for k in node_map}
        for e in edge_tuple:
            if e.parent not in node_map or e.child not in node_map:
                raise ValueError(f"edge {e.parent} -{e.role}-> {e.child} names an unknown node")
            by_parent[e.parent].append(e)
            by_child[e.child].append(e)
        object.__setattr__(self, "nodes", MappingProxyType(node_map))
        object.__setattr__(self, "edges", edge_tuple)
        object.__setattr__(self, "_by_parent", by_parent)
        object.__setattr__(self, "_by_child", by_child)
        object.__setattr__(self, "_edge_set", None)
        object.__setattr__(self, "_nx", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("GraphSnapshot is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraphSnapshot):
            return NotImplemented
        return dict(self.nodes) == dict(other.nodes) and self._edges() == other._edges()

    def __hash__(self) -> int:
        return hash((frozenset(self.nodes), self._edges()))

    def __repr__(self) -> str:
        return f"<GraphSnapshot {len(self.nodes)} nodes, {len(self.edges)} edges>"

    # -- lookups ------------------------------------------------------------------
    def node_info(self, key: str) -> NodeInfo | None:
        """The node with ``key`` or None (the graph-view protocol of the rules)."""
        return self.nodes.get(key)

    def children(self, key: str) -> list[EdgeInfo]:
        """Edges from ``key`` to its children, in the source's order."""
        return list(self._by_parent.get(key, ()))

    def parents(self, key: str) -> list[EdgeInfo]:
        """Edges from ``key``'s parents to it."""
        return list(self._by_child.get(key, ()))

    def child(self, key: str, role: str) -> str | None:
        """The key of ``key``'s child in ``role``, or None."""
        for e in self._by_parent.get(key, ()):
            if e.role == role:
                return e.child
        return None

    def backing(self, key: str) -> str | None:
        return self.child(key, "backing")

    def edge(self, parent: str, role: str) -> EdgeInfo | None:
        for e in self._by_parent.get(parent, ()):
            if e.role == role:
                return e
        return None

    def file_names(self) -> SnapshotFileNames:
        """The nodes' file names as the rules match them (see :class:`SnapshotFileNames`)."""
        return SnapshotFileNames(self)

    def block_nodes(self) -> list[NodeInfo]:
        return [n for n in self.nodes.values() if n.kind == BLOCK_NODE]

    def nx(self) -> nx.MultiDiGraph[str]:
        """The graph as a networkx MultiDiGraph (edge key = role); built once, then cached.

        Treat the result as read-only: it is shared by every caller.
        """
        if self._nx is None:
            g: nx.MultiDiGraph[str] = nx.MultiDiGraph()
            for key, n in self.nodes.items():
                g.add_node(key, kind=n.kind)
            for e in self.edges:
                g.add_edge(e.parent, e.child, key=e.role)
            object.__setattr__(self, "_nx", g)
            return g
        return self._nx

    def _edges(self) -> frozenset[EdgeInfo]:
        if self._edge_set is None:
            edge_set = frozenset(self.edges)
            object.__setattr__(self, "_edge_set", edge_set)
            return edge_set
        return self._edge_set

    # -- diff ---------------------------------------------------------------------
    def diff(self, newer: GraphSnapshot) -> SnapshotDiff:
        """What must change to turn this snapshot into ``newer``.

        A node is *changed* when its key survives but any compared field differs (the
        raw ``info`` is not compared); an edge whose permissions changed shows up as
        removed and added.
        """
        old_nodes, new_nodes = self.nodes, newer.nodes
        added = tuple(k for k in new_nodes if k not in old_nodes)
        removed = tuple(k for k in old_nodes if k not in new_nodes)
        changed = tuple(k for k, n in new_nodes.items()
                        if k in old_nodes and old_nodes[k] != n)
        old_edges, new_edges = self._edges(), newer._edges()
        return SnapshotDiff(
            added_nodes=added,
            removed_nodes=removed,
            changed_nodes=changed,
            added_edges=tuple(e for e in newer.edges if e not in old_edges),
            removed_edges=tuple(e for e in self.edges if e not in new_edges),
        )

    # -- building from QMP --------------------------------------------------------
    @classmethod
    def from_qmp(cls, debug_graph: Mapping[str, Any], named_nodes: list[Mapping[str, Any]],
                 jobs: list[Mapping[str, Any]] | None = None) -> GraphSnapshot:
        """Build a snapshot from a peer's query replies (QEMU or the bundled engine).

        ``debug_graph`` is the return value of ``x-debug-query-block-graph``,
        ``named_nodes`` of ``query-named-block-nodes`` with ``flat: true``, ``jobs`` of
        ``query-block-jobs``. Nodes are listed in ``named_nodes`` order (newest first),
        then backends, then jobs. A link is marked frozen when both its ends are
        attached to the same job — the links QEMU's stream and commit jobs freeze.
        ``implicit`` is inferred as QEMU defines it: an auto-named job filter node
        (driver ``copy-on-read``, ``commit_top`` or ``mirror_top``) while a job runs.
        """
        # Over 60 lines: a long docstring, then one pass over the three replies in the order that
        # gives each vertex its key.
        by_name = {str(n["node-name"]): n for n in named_nodes}
        id_to_key: dict[int, str] = {}
        nodes: dict[str, NodeInfo] = {}
        backends: list[tuple[int, Mapping[str, Any]]] = []
        job_nodes: dict[str, NodeInfo] = {}
        jobs_by_id = {str(j.get("device", j.get("id", ""))): j for j in (jobs or [])}

        for dn in debug_graph.get("nodes", []):
            kind = dn["type"]
            if kind == "block-driver":
                id_to_key[dn["id"]] = str(dn["name"])
            elif kind == "block-job":
                key = f"job:{dn['name']}"
                id_to_key[dn["id"]] = key
                j = jobs_by_id.get(str(dn["name"]), {})
                job_nodes[key] = NodeInfo(key=key, kind=BLOCK_JOB, name=str(dn["name"]),
                                          driver=str(j.get("type", "")), info=dict(j))
            else:
                backends.append((dn["id"], dn))

        raw_edges = debug_graph.get("edges", [])
        root_of: dict[int, int] = {}
        for de in raw_edges:
            if de["name"] == "root":
                root_of.setdefault(de["parent"], de["child"])

        # Nodes present in the debug graph but not in query-named-block-nodes (rare:
        # a race between the two queries) are kept with what the debug graph says.
        job_filter_drivers = ("copy-on-read", "commit_top", "mirror_top")
        any_job = bool(job_nodes) or bool(jobs)
        for name, info in by_name.items():
            nodes[name] = _node_from_blockdevinfo(name, info, any_job, job_filter_drivers)
        for dn in debug_graph.get("nodes", []):
            if dn["type"] == "block-driver" and str(dn["name"]) not in nodes:
                nodes[str(dn["name"])] = NodeInfo(key=str(dn["name"]), kind=BLOCK_NODE,
                                                  name=str(dn["name"]))

        nodes.update(_backend_nodes(backends, id_to_key, root_of))
        nodes.update(job_nodes)

        attached: dict[str, set[str]] = {}
        for de in raw_edges:
            p, c = id_to_key.get(de["parent"]), id_to_key.get(de["child"])
            if p is not None and c is not None and p.startswith("job:"):
                attached.setdefault(c, set()).add(p)

        edges: list[EdgeInfo] = []
        for de in raw_edges:
            p, c = id_to_key.get(de["parent"]), id_to_key.get(de["child"])
            if p is None or c is None:
                continue
            role = str(de["name"])
            frozen = (role in CHAIN_ROLES and not p.startswith(("job:", "backend:"))
                      and bool(attached.get(p, set()) & attached.get(c, set())))
            edges.append(EdgeInfo(parent=p, child=c, role=role,
                                  perm=tuple(de.get("perm", ())),
                                  shared_perm=tuple(de.get("shared-perm", ())),
                                  frozen=frozen))
        # QEMU lists edges newest first; keep each parent's children in that order. A
        # child's parents come newest first too, but the reply lists links by parent,
        # so it cannot say whether a job took a node before or after an overlay did:
        # the job's links go first, as a job is newer than the chain it works on (the
        # newest user is the one QEMU's operation blockers name, see rules.chains).
        edges.sort(key=lambda e: not e.parent.startswith("job:"))
        return cls(nodes.values(), edges)


def _backend_nodes(backends: list[tuple[int, Mapping[str, Any]]], id_to_key: dict[int, str],
                   root_of: Mapping[int, int]) -> dict[str, NodeInfo]:
    """The backends of a debug graph as nodes, keyed by name or, when anonymous, by the
    node they hold; ``id_to_key`` learns their keys."""
    backend_nodes: dict[str, NodeInfo] = {}
    for bid, dn in backends:
        name = str(dn["name"])
        if name:
            key = backend_key(name)
        else:
            child_key = id_to_key.get(root_of.get(bid, -1), "")
            key = anonymous_backend_key(child_key)
        base_key, n = key, 2
        while key in backend_nodes:       # two anonymous backends on one node
            key, n = f"{base_key}~{n}", n + 1
        id_to_key[bid] = key
        backend_nodes[key] = NodeInfo(key=key, kind=BLOCK_BACKEND, name=name)
    return backend_nodes


def _node_from_blockdevinfo(name: str, info: Mapping[str, Any], any_job: bool,
                            job_filter_drivers: tuple[str, ...]) -> NodeInfo:
    image = info.get("image", {}) or {}
    driver = str(info.get("drv", ""))
    return NodeInfo(
        key=name,
        kind=BLOCK_NODE,
        name=name,
        driver=driver,
        read_only=bool(info.get("ro", False)),
        filename=str(info.get("file", "")),
        virtual_size=image.get("virtual-size"),
        actual_size=image.get("actual-size"),
        cluster_size=image.get("cluster-size"),
        header_backing=image.get("backing-filename"),
        header_backing_format=image.get("backing-filename-format"),
        auto_backing_file=image.get("full-backing-filename"),
        implicit=any_job and name.startswith("#") and driver in job_filter_drivers,
        info=MappingProxyType(dict(info)),
    )


class SnapshotFileNames:
    """File names from a snapshot's ``filename`` fields.

    A snapshot knows no drivers, so ``dirname`` is the directory of the first plain
    (not ``json:``) filename on the way down through ``file`` children — where QEMU
    finds it for formats and filters on a host file.
    """

    def __init__(self, snapshot: GraphSnapshot) -> None:
        self._snapshot = snapshot

    def filename(self, key: str) -> str:
        info = self._snapshot.node_info(key)
        return info.filename if info is not None else ""

    def dirname(self, key: str) -> str | None:
        current: str | None = key
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            name = self.filename(current)
            if name and not name.startswith("json:"):
                if name.startswith("file:"):
                    name = name[len("file:"):]
                return name[:name.rfind("/") + 1]
            current = self._snapshot.child(current, "file")
        return None

    def backing_overridden(self, key: str) -> bool:
        info = self._snapshot.node_info(key)
        auto = (info.auto_backing_file if info is not None else None) or ""
        backing = self._snapshot.child(key, "backing")
        if backing is not None:
            return self.filename(backing) != auto
        return bool(auto)

"""The offline graph source: image files on disk as a :class:`GraphSnapshot`.

The editor's canvas draws snapshots; this module makes one from image files, so a chain
on disk is drawn by the same code as a live graph. Each image is a ``block-node`` whose
key is its absolute path and whose name is its file name (made unique with its
directory when two images share a name); each backing link is a ``backing`` edge. A
backing file that cannot be opened becomes a placeholder node (``driver`` ``missing``
or ``unreadable``) so the broken link has something to point at.

What the canvas cannot see in a snapshot — which links are broken, and why — is in
:class:`OfflineGraph` next to it (``broken_edges``, ``problems`` by node key, the
:class:`~engine.offline.inspect.ChainReport` of every opened path). ``NodeInfo.info``
carries ``{"offline": True, "problems": [...], "data_bytes": N, "zero_bytes": N}`` for
views that only get the snapshot.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo
from engine.offline.inspect import (
    FORMAT,
    LOOP,
    MISSING,
    UNREADABLE,
    ChainReport,
    Layer,
    LinkProblem,
    inspect_chain,
)

EdgeKey = tuple[str, str, str]  # parent, role, child


@dataclass(frozen=True)
class OfflineGraph:
    """A snapshot of image files plus what is wrong with their links."""

    snapshot: GraphSnapshot
    reports: dict[str, ChainReport] = field(default_factory=dict)
    broken_edges: frozenset[EdgeKey] = frozenset()
    problems: dict[str, tuple[LinkProblem, ...]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)   # path -> why it did not open

    def problem_nodes(self) -> list[str]:
        return [k for k, v in self.problems.items() if v]


def node_key(path: str) -> str:
    """The snapshot key of the image at ``path``."""
    return os.path.abspath(path)


def _identity(path: str) -> tuple[int, int] | str:
    try:
        st = os.stat(path)
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


def offline_snapshot(paths: Iterable[str | os.PathLike[str]]) -> OfflineGraph:
    """Inspect every image in ``paths`` (and its chain) and draw them as one graph.

    Chains that share files (two overlays on one base) share nodes. An image that cannot
    be opened at all is listed in ``errors`` and left out.
    """
    builder = _OfflineGraphBuilder()
    for raw in paths:
        builder.add_image(os.fspath(raw))
    return builder.graph()


class _OfflineGraphBuilder:
    """The graph of :func:`offline_snapshot`, built one opened image at a time."""

    def __init__(self) -> None:
        self.reports: dict[str, ChainReport] = {}
        self.errors: dict[str, str] = {}
        self.layers: dict[str, Layer] = {}            # key -> layer
        self.by_identity: dict[tuple[int, int] | str, str] = {}
        self.order: list[str] = []
        self.edges: list[EdgeInfo] = []
        self.placeholders: dict[str, NodeInfo] = {}
        self.broken: set[EdgeKey] = set()
        self.problems: dict[str, list[LinkProblem]] = {}

    def key_for(self, path: str) -> str:
        """The node key of ``path``: one per file, whatever name it is reached by."""
        ident = _identity(path)
        if ident not in self.by_identity:
            self.by_identity[ident] = node_key(path)
        return self.by_identity[ident]

    def add_image(self, path: str) -> None:
        """The chain of the image at ``path``: its layers, links and link problems."""
        try:
            report = inspect_chain(path)
        except Exception as exc:  # an ImageError, or an OS error while probing
            self.errors[path] = str(exc)
            return
        self.reports[path] = report
        keys = []
        for layer in report.layers:
            k = self.key_for(layer.path)
            keys.append(k)
            if k not in self.layers:
                self.layers[k] = layer
                self.order.append(k)
        for upper, lower in itertools.pairwise(keys):
            self._link(upper, lower)
        for problem in report.problems:
            self._add_problem(problem)

    def _link(self, parent: str, child: str) -> None:
        e = EdgeInfo(parent=parent, child=child, role="backing")
        if e not in self.edges:
            self.edges.append(e)

    def _add_problem(self, problem: LinkProblem) -> None:
        """A broken backing link: listed on its overlay, drawn to what it points at."""
        owner = self.key_for(problem.overlay)
        bucket = self.problems.setdefault(owner, [])
        if problem not in bucket:
            bucket.append(problem)
        if problem.continues:
            return
        if problem.kind in (MISSING, UNREADABLE):
            target = self._placeholder(problem)
        elif problem.kind in (LOOP, FORMAT):
            target = self.key_for(problem.resolved)
            if problem.kind == FORMAT and target not in self.layers:
                self._add_misdeclared_backing(problem.resolved, target)
        else:  # pragma: no cover - every breaking kind is handled above
            return
        self._link(owner, target)
        self.broken.add((owner, "backing", target))

    def _placeholder(self, problem: LinkProblem) -> str:
        """A node for a backing file that is missing or cannot be read; its key."""
        target = f"{problem.kind}:{os.path.abspath(problem.resolved)}"
        self.placeholders.setdefault(target, NodeInfo(
            key=target, kind="block-node", name=os.path.basename(problem.backing),
            driver=problem.kind, filename=problem.resolved,
            info=MappingProxyType({"offline": True, "placeholder": True,
                                   "problems": (problem.message,)})))
        return target

    def _add_misdeclared_backing(self, path: str, key: str) -> None:
        """The mis-declared backing file itself is a fine image: show it."""
        try:
            sub = inspect_chain(path)
        except Exception as exc:
            self.errors[path] = str(exc)
            return
        self.layers[key] = sub.layers[0]
        self.order.append(key)

    def graph(self) -> OfflineGraph:
        names = _unique_names([self.layers[k].path for k in self.order])
        nodes = [_node(k, self.layers[k], names[self.layers[k].path],
                       self.problems.get(k, []))
                 for k in self.order]
        nodes.extend(self.placeholders.values())
        present = {n.key for n in nodes}
        edges = [e for e in self.edges if e.parent in present and e.child in present]
        snap = GraphSnapshot(nodes, edges)
        return OfflineGraph(snap, self.reports, frozenset(self.broken),
                            {k: tuple(v) for k, v in self.problems.items()}, self.errors)


def _unique_names(paths: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    count: dict[str, int] = {}
    for p in paths:
        count[os.path.basename(p)] = count.get(os.path.basename(p), 0) + 1
    for p in paths:
        base = os.path.basename(p)
        if count[base] > 1:
            base = os.path.join(os.path.basename(os.path.dirname(os.path.abspath(p))), base)
        names[p] = base
    return names


def _node(key: str, layer: Layer, name: str, problems: list[LinkProblem]) -> NodeInfo:
    return NodeInfo(
        key=key, kind="block-node", name=name, driver=layer.format,
        filename=layer.path, virtual_size=layer.virtual_size, actual_size=layer.actual_size,
        cluster_size=layer.cluster_size, header_backing=layer.backing_file,
        header_backing_format=layer.backing_format,
        info=MappingProxyType({
            "offline": True,
            "problems": tuple(p.message for p in problems),
            "data_bytes": layer.data_bytes,
            "zero_bytes": layer.zero_bytes,
        }))

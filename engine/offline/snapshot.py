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
    reports: dict[str, ChainReport] = {}
    errors: dict[str, str] = {}
    layers: dict[str, Layer] = {}            # key -> layer
    by_identity: dict[tuple[int, int] | str, str] = {}
    order: list[str] = []
    edges: list[EdgeInfo] = []
    placeholders: dict[str, NodeInfo] = {}
    broken: set[EdgeKey] = set()
    problems: dict[str, list[LinkProblem]] = {}

    def key_for(path: str) -> str:
        ident = _identity(path)
        if ident not in by_identity:
            by_identity[ident] = node_key(path)
        return by_identity[ident]

    for raw in paths:
        path = os.fspath(raw)
        try:
            report = inspect_chain(path)
        except Exception as exc:  # an ImageError, or an OS error while probing
            errors[path] = str(exc)
            continue
        reports[path] = report
        keys = []
        for layer in report.layers:
            k = key_for(layer.path)
            keys.append(k)
            if k not in layers:
                layers[k] = layer
                order.append(k)
        for upper, lower in itertools.pairwise(keys):
            e = EdgeInfo(parent=upper, child=lower, role="backing")
            if e not in edges:
                edges.append(e)
        for problem in report.problems:
            owner = key_for(problem.overlay)
            bucket = problems.setdefault(owner, [])
            if problem not in bucket:
                bucket.append(problem)
            if problem.continues:
                continue
            if problem.kind in (MISSING, UNREADABLE):
                target = f"{problem.kind}:{os.path.abspath(problem.resolved)}"
                placeholders.setdefault(target, NodeInfo(
                    key=target, kind="block-node", name=os.path.basename(problem.backing),
                    driver=problem.kind, filename=problem.resolved,
                    info=MappingProxyType({"offline": True, "placeholder": True,
                                           "problems": (problem.message,)})))
            elif problem.kind in (LOOP, FORMAT):
                target = key_for(problem.resolved)
                if problem.kind == FORMAT and target not in layers:
                    # the mis-declared backing file itself is a fine image: show it
                    try:
                        sub = inspect_chain(problem.resolved)
                    except Exception as exc:
                        errors[problem.resolved] = str(exc)
                        sub = None
                    if sub is not None:
                        layers[target] = sub.layers[0]
                        order.append(target)
            else:  # pragma: no cover - every breaking kind is handled above
                continue
            e = EdgeInfo(parent=owner, child=target, role="backing")
            if e not in edges:
                edges.append(e)
            broken.add((owner, "backing", target))

    names = _unique_names([layers[k].path for k in order])
    nodes = [_node(k, layers[k], names[layers[k].path], problems.get(k, []))
             for k in order]
    nodes.extend(placeholders.values())
    present = {n.key for n in nodes}
    edges = [e for e in edges if e.parent in present and e.child in present]
    snap = GraphSnapshot(nodes, edges)
    return OfflineGraph(snap, reports, frozenset(broken),
                        {k: tuple(v) for k, v in problems.items()}, errors)


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

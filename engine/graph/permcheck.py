"""Recomputing and checking permissions after a graph change, as QEMU does on every one.

A node's cumulative permissions are the union of its parent links' ``perm`` and the
intersection of their ``shared``; each link's permissions follow from its parent's
driver, role and cumulative permissions (:func:`engine.graph.perms.child_perms`), so
a change propagates down. Then every touched node is checked, parents before children:
conflicts between parents, writers on read-only nodes, image locks between ``file``
nodes on one host file. Changes are journaled: a refused check rolls back with the
caller's transaction.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from engine.graph import perms as P
from engine.graph.nodes import Child, GraphError, Node
from engine.graph.rules.permissions import NodeUser, check_node_users

if TYPE_CHECKING:
    from engine.graph.model import BlockGraph


def refresh_perms(graph: BlockGraph, seeds: list[Node]) -> None:
    """Recompute permissions below ``seeds`` and check them (GraphError: QEMU's text)."""
    touched: list[Node] = []
    seen: set[str] = set()
    work = list(seeds)
    while work:
        node = work.pop()
        if node.name not in graph.nodes:
            continue
        perm, shared = 0, P.ALL
        for link in node.parents:
            perm |= link.perm
            shared &= link.shared
        if (perm, shared) != (node.cum_perm, node.cum_shared):
            _set_cum(graph, node, perm, shared)
        if node.name not in seen:
            seen.add(node.name)
            touched.append(node)
        for role, link in node.children.items():
            if link.fixed is not None:
                continue
            new = P.child_perms(
                node.spec, role, writable=not node.read_only,
                force_share_child=link.child.force_share,
                parent_perm=node.cum_perm, parent_shared=node.cum_shared,
                fixed_size=node.driver == "raw" and (
                    "offset" in node.options or "size" in node.options),
                rewrites=P.quorum_rewrites(node.driver, node.options),
                commit_filter=node.driver != "mirror_top" or not _of_mirror_job(node),
                extra=P.blkdebug_extra(node.driver, node.options))
            if new != (link.perm, link.shared):
                _set_link_perm(graph, link, *new)
                work.append(link.child)
    for node in topological(touched):
        check_node_perms(graph, node)


def _of_mirror_job(node: Node) -> bool:
    """A ``mirror_top`` filter that a mirror job (not an active commit) holds."""
    return any(getattr(link.parent, "job_type", None) == "mirror" for link in node.parents)


def topological(nodes: list[Node]) -> list[Node]:
    """``nodes`` with parents before children (Kahn's algorithm on the touched set
    only: a refresh usually touches a handful of nodes of a big graph)."""
    if len(nodes) <= 1:
        return nodes
    members = {id(n): n for n in nodes}
    indegree = {key: 0 for key in members}
    for n in nodes:
        for link in n.parents:
            if id(link.parent) in members:
                indegree[id(n)] += 1
    ready = deque(n for n in nodes if indegree[id(n)] == 0)
    out: list[Node] = []
    while ready:
        n = ready.popleft()
        out.append(n)
        for link in n.children.values():
            key = id(link.child)
            if key in indegree:
                indegree[key] -= 1
                if indegree[key] == 0:
                    ready.append(link.child)
    if len(out) != len(nodes):   # pragma: no cover - the rules forbid cycles
        return nodes
    return out


def _set_cum(graph: BlockGraph, node: Node, perm: int, shared: int) -> None:
    old = (node.cum_perm, node.cum_shared)
    node.cum_perm, node.cum_shared = perm, shared

    def undo() -> None:
        node.cum_perm, node.cum_shared = old

    graph.record(undo)


def _set_link_perm(graph: BlockGraph, link: Child, perm: int, shared: int) -> None:
    old = (link.perm, link.shared)
    link.perm, link.shared = perm, shared

    def undo() -> None:
        link.perm, link.shared = old

    graph.record(undo)


def check_node_perms(graph: BlockGraph, node: Node) -> None:
    """QEMU's checks on one node, in its order (GraphError with its text)."""
    # a conflict needs some parent's perm outside some other parent's shared set; a
    # read-only node refuses writers: only then are the users worth listing
    if node.cum_perm & ~node.cum_shared & P.ALL or \
            (node.cum_perm & (P.WRITE | P.WRITE_UNCHANGED) and node.read_only):
        check_node_users(
            node.name, [NodeUser(link.describe_parent(), link.role, link.perm, link.shared)
                        for link in node.parents],
            read_only=node.read_only, was_read_only=graph.ro_before.get(node.name, True))
    if node.file_id is not None and node.options.get("locking", "auto") != "off":
        text = lock_conflict_with(graph, node.file_id, node.cum_perm, node.cum_shared,
                                  besides=node)
        if text:
            raise GraphError(text)


def lock_conflict_with(graph: BlockGraph, file_id: tuple[int, int], perm: int, shared: int,
                       besides: Node | None = None) -> str | None:
    """QEMU's image-lock error for taking (perm, shared) on a host file that ``file``
    nodes of this graph hold, or None (``locking=off`` nodes hold no locks)."""
    for other in graph.files.get(file_id, ()):
        if other is besides or other.options.get("locking", "auto") == "off":
            continue
        err = P.lock_conflict(perm, shared, other.cum_perm, other.cum_shared)
        if err:
            return err
    return None

"""Graph changes the jobs share: the nodes a job holds, the filter it puts in.

QEMU's checks (lookups, chain walks on graph views, operation blockers) are the
rules' (:mod:`engine.graph.rules`); here are the steps on live nodes that jobs take
once the rules allowed them: the next node down a chain, the images a job reads and
writes, the filter node each job puts into the graph, what it leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.graph import perms as P
from engine.graph import rules
from engine.graph.filenames import filename
from engine.graph.model import Backend, BlockGraph, JobParent, Node
from engine.jobs.errors import JobCommandError


def filter_or_cow(node: Node) -> Node | None:
    """The next node down the chain (QEMU's bdrv_filter_or_cow_bs): a filter's
    filtered child, else the backing child."""
    role = node.spec.filtered_role
    return node.child(role) if role is not None else node.backing


def skip_filters(node: Node | None) -> Node | None:
    while node is not None and node.spec.filtered_role is not None:
        node = node.child(node.spec.filtered_role)
    return node


def node_filename(node: Node) -> str:
    return filename(node, {})


@dataclass
class JobFootprint:
    """What a job added to the graph, so ``clean`` can take exactly that away."""

    parent: JobParent | None = None
    backends: list[Backend] = field(default_factory=list)
    filter_node: Node | None = None
    frozen: tuple[Node, Node | None] | None = None
    made_writable: list[Node] = field(default_factory=list)

    def release(self, graph: BlockGraph) -> None:
        """Undo the job's graph footprint (filter removal is the caller's business)."""
        with graph.transaction():
            if self.frozen is not None:
                top, base = self.frozen
                graph.unfreeze_chain(top, base)
                self.frozen = None
            for backend in self.backends:
                graph.remove_backend(backend)
            self.backends.clear()
            if self.parent is not None:
                graph.remove_job(self.parent)
                self.parent = None


def set_read_only(graph: BlockGraph, node: Node, read_only: bool) -> None:
    """Reopen ``node`` read-only or read-write as QEMU's bdrv_reopen_set_read_only does:
    the state becomes one of the node's explicit options (a later reopen that names
    the node by reference keeps it), and children created from its options (its
    ``file``, not its backing) follow."""
    graph.set(node, "read_only_explicit", True)
    work = [node]
    while work:
        n = work.pop()
        graph.set_read_only(n, read_only)
        work.extend(link.child for role, link in n.children.items()
                    if role != "backing" and link.inherits
                    and not link.child.read_only_explicit)
    graph.refresh_perms([node])


def refresh_survivors(graph: BlockGraph, nodes: list[Node | None]) -> None:
    """Recompute permissions of nodes that lost a parent (if they still exist)."""
    alive = [n for n in nodes if n is not None and graph.nodes.get(n.name) is n]
    if alive:
        with graph.transaction():
            graph.refresh_perms(alive)


def job_backend(graph: BlockGraph, node: Node, perm: int, shared: int) -> Backend:
    """An anonymous BlockBackend a job uses on ``node`` with fixed permissions."""
    backend = graph.add_backend(Backend(name="", device_kind="job", writable=False), None)
    graph.attach_backend_root(backend, node, (perm, shared))
    return backend


def new_filter(graph: BlockGraph, driver: str, name: str | None,
               options: dict[str, Any] | None = None, prefix: str = "") -> Node:
    """A job filter node: named by ``filter-node-name`` or auto-named and implicit.

    ``prefix``: stream's filter is opened like a blockdev-add (errors read "Could
    not create node: ..."), commit's filters are created directly (no prefix).
    """
    if name is not None:
        try:
            rules.check_new_node_name(graph, name)
        except rules.RuleViolation as exc:
            raise JobCommandError(f"{prefix}{exc}") from exc
    node = Node(name=name or graph.new_name(), driver=driver, auto_named=name is None,
                options=dict(options or {}), implicit=name is None)
    io_class = node.spec.io
    assert io_class is not None
    node.io = io_class(node, graph.io)
    return node


PERM_CR = P.CONSISTENT_READ
PERM_W = P.WRITE
PERM_WU = P.WRITE_UNCHANGED
PERM_ALL = P.ALL


def drop_job_filter(graph: BlockGraph, flt: Node) -> None:
    """Take a job's filter (commit_top, mirror_top) out of the graph: its users link to
    the node below it, whose links' permissions are computed again (the filter's own
    were not theirs); a filter that nothing uses any more is just released."""
    with graph.transaction():
        if flt.parents:
            below = flt.child("backing")
            parents = [link.parent for link in flt.parents if isinstance(link.parent, Node)]
            graph.remove_filter(flt, "backing")
            graph.refresh_perms([n for n in (*parents, below) if n is not None])
        else:
            graph.release(flt)

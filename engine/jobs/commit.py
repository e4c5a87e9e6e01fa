"""``block-commit``: merge layers of a chain down into a base node.

Two jobs hide behind the command, as in QEMU 7.2:

* **intermediate commit** (``top-node`` below the active layer): a ``commit_top``
  filter goes above the top node; the data of top … base's overlay is written
  into the base; at the end the overlay's backing becomes the base and its header
  names the base (or ``backing-file``); the committed layers drop out unless
  something else holds them. It finishes by itself.
* **active commit** (top = the device): a ``mirror_top`` filter goes above the
  device; once the base holds everything the job goes ``ready`` and waits. On
  ``job-complete`` every user of the filter moves to the base (the pivot); a soft
  ``block-job-cancel`` ends it without pivoting; a forced cancel aborts it.

The base is reopened read-write for the job and restored afterwards (after a
pivot it takes the top's read-only state). All data is flushed before a header
or the graph changes.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from engine.graph import rules
from engine.graph.model import Backend, BlockGraph, JobParent, Node
from engine.jobs.copy_jobs import ChainLookup, CommitDriver, CommitLayers, GraphHooks
from engine.jobs.engine_jobs import jobs_of
from engine.jobs.errors import JobFailed
from engine.jobs.graphops import (
    PERM_ALL,
    PERM_CR,
    PERM_W,
    PERM_WU,
    JobFootprint,
    drop_job_filter,
    filter_or_cow,
    job_backend,
    new_filter,
    node_filename,
    refresh_survivors,
    set_read_only,
)
from engine.jobs.job import Job
from engine.jobs.manager import JobManager
from engine.jobs.stream import new_job

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

def move_parents(graph: BlockGraph, old: Node, new: Node,
                 keep: JobFootprint | None = None) -> list[Node]:
    """Point every parent of ``old`` (but the job's own) at ``new``; returns moved nodes."""
    moved: list[Node] = []
    for link in list(old.parents):
        parent = link.parent
        if keep is not None and (parent is keep.parent or parent in keep.backends):
            continue
        if isinstance(parent, Node):
            graph.replace_child(parent, link.role, new, inherits=False)
            moved.append(parent)
        elif isinstance(parent, Backend):
            graph.detach(link, release=False)
            graph.attach_backend_root(parent, new)
    return moved


def rewrite_header(graph: BlockGraph, overlay: Node, backing: str, fmt: str) -> None:
    """Write ``overlay``'s header backing string (data was flushed before); a read-only
    overlay is reopened read-write for it and back, as QEMU's backing links do."""
    was_ro = overlay.read_only
    if was_ro:
        with graph.transaction():
            set_read_only(graph, overlay, False)
    try:
        assert overlay.image is not None
        overlay.image.set_backing(backing, fmt)
    except Exception as exc:
        raise JobFailed(getattr(exc, "errno", None) or errno.EIO, str(exc)) from exc
    finally:
        if was_ro:
            with graph.transaction():
                set_read_only(graph, overlay, True)
    graph.set(overlay, "header_backing", backing)
    graph.set(overlay, "header_backing_format", fmt)
    graph.set(overlay, "auto_backing_file", backing)


class CommitGraph(GraphHooks):
    """The graph side of one commit job (intermediate or active)."""

    def __init__(self, graph: BlockGraph, top: Node, base: Node, filter_node: Node,
                 footprint: JobFootprint, base_was_ro: bool, backing_file: str | None,
                 active: bool, driver: CommitDriver | None = None) -> None:
        self.graph = graph
        self.top = top
        self.base = base
        self.filter_node: Node | None = filter_node
        self.footprint = footprint
        self.base_was_ro = base_was_ro
        self.backing_file = backing_file
        self.active = active
        self.driver = driver
        self.pivoted = False
        self.intermediates: list[Node] = []

    def _exists(self, node: Node | None) -> bool:
        return node is not None and self.graph.nodes.get(node.name) is node

    def prepare(self, job: Job) -> None:
        graph, flt, base = self.graph, self.filter_node, self.base
        if not self._exists(flt):
            return
        assert flt is not None
        if self.active:
            if self.driver is None or not self.driver.should_complete or job.cancel_requested:
                return  # a soft cancel after READY: no pivot
            with graph.transaction():
                # QEMU drops the job's write access to the target first: the users
                # moving onto the base (a guest disk) need not share write with it
                for backend in self.footprint.backends:
                    graph.remove_backend(backend)
                set_read_only(graph, base, self.top.read_only)
                move_parents(graph, flt, base, self.footprint)
                graph.refresh_perms([base])
            self.footprint.backends.clear()
            self.pivoted = True
            self.footprint.release(graph)
        else:
            self.footprint.release(graph)
            backing = self.backing_file or node_filename(base)
            overlays = [link.parent for link in flt.parents
                        if isinstance(link.parent, Node) and link.role == "backing"]
            for overlay in overlays:
                if overlay.image is not None:
                    rewrite_header(graph, overlay, backing, base.driver)
            with graph.transaction():
                move_parents(graph, flt, base)
                graph.refresh_perms([base, *overlays])  # their backing links changed child
        self._forget_filter()

    def _forget_filter(self) -> None:
        flt = self.filter_node
        if self._exists(flt):
            assert flt is not None
            drop_job_filter(self.graph, flt)
        self.filter_node = None

    def abort(self, job: Job) -> None:
        self.footprint.release(self.graph)
        self._forget_filter()

    def clean(self, job: Job) -> None:
        self.footprint.release(self.graph)
        self._forget_filter()
        refresh_survivors(self.graph, [self.top, *self.intermediates, self.base])
        # An active commit gives the base the top's state on pivot and leaves it
        # read-write after a soft cancel; only an aborted job restores it.
        restore = not self.active or job.ret != 0
        if self.base_was_ro and restore and not self.pivoted and self._exists(self.base):
            with self.graph.transaction():
                set_read_only(self.graph, self.base, True)


def _commit_layers(top: Node, base: Node, source: Node) -> CommitLayers:
    """What the commit reads and writes now: the layers from the top down to the base
    (filters skipped), the base, and the top's guest view (for an active commit read
    through its mirror_top filter while it is there)."""
    above: list[Node] = []
    node: Node | None = top
    while node is not None and node is not base:
        if not node.spec.is_filter:
            above.append(node)
        node = filter_or_cow(node)
    if source is not top and source.child("backing") is not top:
        source = top
    assert base.io is not None and source.io is not None
    chain = list(above)
    below: Node | None = base
    while below is not None:
        if not below.spec.is_filter:
            chain.append(below)
        below = filter_or_cow(below)
    return CommitLayers([n.io for n in above if n.io is not None], base.io, source.io,
                        [n.io for n in chain if n.io is not None])


def start_commit(engine: Engine, plan: rules.CommitPlan, args: dict[str, Any]) -> Job:
    """The filter above the top, the job and its nodes, the base read-write, the frozen
    chain, in QEMU's order for each kind of commit; then start copying."""
    graph, mgr = engine.graph, jobs_of(engine)
    top, base = graph.nodes[plan.top], graph.nodes[plan.base]
    footprint = JobFootprint()
    holder: list[Node] = []
    driver = CommitDriver(layers=ChainLookup(graph.io, lambda: _commit_layers(
        top, base, holder[0] if holder and plan.active else top)), ctx=graph.io,
        active=plan.active)
    base_was_ro = base.read_only
    created: list[Job] = []
    try:
        with graph.transaction(restore_names=False):
            setup = _setup_active if plan.active else _setup_intermediate
            holder.append(setup(graph, mgr, plan, driver, args, footprint, created))
            graph.freeze_chain(holder[0], base)
            footprint.frozen = (holder[0], base)
    except rules.RuleViolation:
        for job in created:
            job.early_fail()
        raise
    hooks = CommitGraph(graph, top, base, holder[0], footprint, base_was_ro,
                        args.get("backing-file"), plan.active, driver)
    hooks.intermediates = [graph.nodes[k] for k in plan.intermediates]
    driver.hooks = hooks
    created[0].start()
    return created[0]


def _setup_active(graph: BlockGraph, mgr: JobManager, plan: rules.CommitPlan,
                  driver: CommitDriver, args: dict[str, Any], footprint: JobFootprint,
                  created: list[Job]) -> Node:
    """QEMU's commit_active_start: the base read-write, the mirror_top filter, the job."""
    top, base = graph.nodes[plan.top], graph.nodes[plan.base]
    if base.read_only:
        set_read_only(graph, base, False)
    flt = _insert_filter(graph, "mirror_top", top, args)
    created.append(new_job(mgr, plan.job_id, driver, args))
    footprint.backends.append(job_backend(graph, base, PERM_W, PERM_WU | PERM_CR | PERM_W))
    footprint.parent = graph.add_job(JobParent(plan.job_id, "commit"), [
        ("main node", flt, PERM_CR, PERM_CR | PERM_WU | PERM_W),
        ("source", top, 0, PERM_WU | PERM_W | PERM_CR),
        ("target", base, 0, PERM_ALL),
        *[("intermediate node", graph.nodes[k], 0, shared)
          for k, shared in rules.commit_intermediate_shares(graph, plan)]])
    return flt


def _setup_intermediate(graph: BlockGraph, mgr: JobManager, plan: rules.CommitPlan,
                        driver: CommitDriver, args: dict[str, Any], footprint: JobFootprint,
                        created: list[Job]) -> Node:
    """QEMU's commit_start: the job, the base read-write, the commit_top filter."""
    top, base = graph.nodes[plan.top], graph.nodes[plan.base]
    created.append(new_job(mgr, plan.job_id, driver, args))
    if base.read_only:
        set_read_only(graph, base, False)
    flt = _insert_filter(graph, "commit_top", top, args)
    flt.read_only = True
    footprint.backends.append(job_backend(graph, base, PERM_CR | PERM_W, PERM_CR | PERM_WU))
    footprint.backends.append(job_backend(graph, top, 0, PERM_ALL))
    footprint.parent = graph.add_job(JobParent(plan.job_id, "commit"), [
        ("main node", graph.nodes[plan.device], 0, PERM_ALL),
        *[("intermediate node", graph.nodes[k], 0, shared)
          for k, shared in rules.commit_intermediate_shares(graph, plan)],
        ("base", base, 0, PERM_ALL)])
    return flt


def _insert_filter(graph: BlockGraph, driver: str, top: Node, args: dict[str, Any]) -> Node:
    flt = new_filter(graph, driver, args.get("filter-node-name"))
    graph.add_node(flt)
    graph.insert_filter_above(flt, top, "backing")
    graph.refresh_perms([flt, top])  # the top has a new parent: the filter
    return flt

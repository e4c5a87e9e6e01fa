"""``block-stream``: copy a chain's data up into a node, then cut the chain below it.

Graph during the job (as QEMU 7.2 shows it): a ``copy-on-read`` filter above the
device takes over all of the device's parents (auto-named and *implicit* unless
``filter-node-name`` is given); a job vertex holds ``main node`` (the filter),
``active node`` (the device) and ``intermediate node`` (each layer that goes away);
an anonymous BlockBackend holds the filter; the links from the filter down to the
base's overlay are frozen. A read-only device is reopened read-write for the job.

At the end (``prepare``) the filter goes, the device's backing becomes the base
(or nothing), and its header names the base's filename (or ``backing-file``) —
written only after the copied data is flushed. Intermediate nodes nobody else uses
are deleted. A cancel or failure leaves graph and header as they were.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from engine.graph import rules
from engine.graph.model import BlockGraph, JobParent, Node
from engine.jobs.copy_jobs import ChainLookup, GraphHooks, StreamDriver, StreamLayers
from engine.jobs.engine_jobs import jobs_of
from engine.jobs.errors import JobCommandError, JobFailed
from engine.jobs.graphops import (
    PERM_ALL,
    PERM_CR,
    PERM_W,
    PERM_WU,
    JobFootprint,
    filter_or_cow,
    job_backend,
    new_filter,
    node_filename,
    refresh_survivors,
    set_read_only,
    skip_filters,
)
from engine.jobs.job import Job, JobDriver, OnError
from engine.jobs.manager import JobManager

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

def on_error_of(args: dict[str, Any]) -> OnError:
    value = args.get("on-error", "report")
    return OnError.ENOSPC if value == "auto" else OnError(value)


def new_job(mgr: JobManager, job_id: str, driver: JobDriver, args: dict[str, Any]) -> Job:
    """QEMU's block_job_create: the id checks, ``created``, then the speed (a negative
    speed fails the new job at once: ``created`` then ``null``)."""
    job = mgr.create(job_id, driver, auto_finalize=args.get("auto-finalize", True),
                     auto_dismiss=args.get("auto-dismiss", True), on_error=on_error_of(args))
    speed = args.get("speed", 0)
    if speed:
        try:
            job.set_speed(speed)
        except JobCommandError:
            job.early_fail()
            raise
    return job


class StreamGraph(GraphHooks):
    """The graph side of one stream job."""

    def __init__(self, graph: BlockGraph, device: Node, base: Node | None,
                 base_overlay: Node, backing_file: str | None, filter_node: Node,
                 footprint: JobFootprint, device_was_ro: bool) -> None:
        self.graph = graph
        self.device = device
        self.base = base
        self.base_overlay = base_overlay
        #: the node directly above the base (the base's overlay, or a filter below it)
        self.above_base = base_overlay
        self.backing_file = backing_file
        self.filter_node: Node | None = filter_node
        self.footprint = footprint
        self.device_was_ro = device_was_ro

    def _drop_filter(self) -> None:
        """The copy-on-read filter goes; its users (the job's own links among them, which
        keep the device alive until the job is cleaned up) move to the device."""
        if self.filter_node is not None and self.filter_node.name in self.graph.nodes:
            with self.graph.transaction():
                self.graph.remove_filter(self.filter_node, "file")
                self.graph.refresh_perms([self.device])
        self.filter_node = None

    def prepare(self, job: Job) -> None:
        self._drop_filter()
        device = self.device
        if device.backing is None:
            return
        # the base is what lies below the node above it *now*: that link is not frozen
        base = filter_or_cow(self.above_base)
        unfiltered = skip_filters(base)
        if unfiltered is not None:
            base_id = self.backing_file or node_filename(unfiltered)
            base_fmt: str | None = unfiltered.driver
        else:
            base_id, base_fmt = None, None
        assert device.image is not None  # a node with a backing link is a format node
        try:
            device.image.set_backing(base_id, base_fmt)
        except Exception as exc:
            raise JobFailed(getattr(exc, "errno", None) or errno.EIO, str(exc)) from exc
        old_backing = device.backing
        with self.graph.transaction():
            self.graph.replace_child(device, "backing", base)
            self.graph.set(device, "header_backing", base_id)
            self.graph.set(device, "header_backing_format", base_fmt)
            self.graph.set(device, "auto_backing_file", base_id)
            self.graph.refresh_perms([device])
        refresh_survivors(self.graph, [old_backing])

    def clean(self, job: Job) -> None:
        self._drop_filter()
        self.footprint.release(self.graph)
        refresh_survivors(self.graph, [self.device, self.base_overlay, self.base])
        if self.device_was_ro and self.device.name in self.graph.nodes:
            with self.graph.transaction():
                set_read_only(self.graph, self.device, True)


def _stream_layers(device: Node, base_overlay: Node, filter_node: Node) -> StreamLayers:
    """What the stream reads and writes now: the device's layers down to the base's
    overlay, read through the job's copy-on-read filter (while it is there)."""
    intermediates: list[Node] = []
    if base_overlay is not device:
        node = filter_or_cow(device)
        while node is not None:
            if not node.spec.is_filter:
                intermediates.append(node)
            if node is base_overlay:
                break
            node = filter_or_cow(node)
    source = filter_node if filter_node.io is not None and filter_node.file is device \
        else device
    assert device.io is not None and source.io is not None
    return StreamLayers(device.io, [n.io for n in intermediates if n.io is not None],
                        source.io)


def start_stream(engine: Engine, plan: rules.StreamPlan, args: dict[str, Any]) -> Job:
    """Reopen the device read-write, put the filter above it, create the job and give
    it its nodes, freeze the chain: all in one transaction, then start copying."""
    graph, mgr = engine.graph, jobs_of(engine)
    device = graph.nodes[plan.device]
    base_overlay = graph.nodes[plan.base_overlay]
    footprint = JobFootprint()
    holder: list[Node] = []
    driver = StreamDriver(layers=ChainLookup(graph.io, lambda: _stream_layers(
        device, base_overlay, holder[0] if holder else device)), ctx=graph.io)
    device_was_ro = device.read_only
    created: list[Job] = []
    try:
        with graph.transaction(restore_names=False):
            if device_was_ro:
                set_read_only(graph, device, False)
            holder.append(_insert_filter(graph, device, base_overlay, args))
            created.append(new_job(mgr, plan.job_id, driver, args))
            _hold_nodes(graph, plan, holder[0], device, footprint)
    except rules.RuleViolation:
        for job in created:
            job.early_fail()
        raise
    hooks = StreamGraph(graph, device, graph.nodes.get(plan.base or ""), base_overlay,
                        args.get("backing-file"), holder[0], footprint, device_was_ro)
    hooks.above_base = graph.nodes[plan.above_base]
    driver.hooks = hooks
    created[0].start()
    return created[0]


def _insert_filter(graph: BlockGraph, device: Node, base_overlay: Node,
                   args: dict[str, Any]) -> Node:
    """The copy-on-read filter above the device (opened like a blockdev-add: its errors
    read ``Could not create node: ...``), told where the stream stops."""
    flt = new_filter(graph, "copy-on-read", args.get("filter-node-name"),
                     {"bottom": base_overlay.name}, prefix="Could not create node: ")
    graph.add_node(flt)
    graph.insert_filter_above(flt, device, "file")
    graph.refresh_perms([flt])
    return flt


def _hold_nodes(graph: BlockGraph, plan: rules.StreamPlan, flt: Node, device: Node,
                footprint: JobFootprint) -> None:
    """The job's own users of its nodes (its BlockBackend on the filter, the job's
    links) and the frozen links from the filter down to the base's overlay."""
    footprint.backends.append(job_backend(graph, flt, PERM_CR, PERM_CR | PERM_WU | PERM_W))
    footprint.parent = graph.add_job(JobParent(plan.job_id, "stream"), [
        ("main node", flt, 0, PERM_ALL),
        ("active node", device, 0, PERM_CR | PERM_WU | PERM_W),
        *[("intermediate node", graph.nodes[k], 0, PERM_CR | PERM_WU)
          for k in plan.intermediates]])
    graph.freeze_chain(flt, graph.nodes[plan.base_overlay])
    footprint.frozen = (flt, graph.nodes[plan.base_overlay])

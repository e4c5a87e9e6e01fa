"""``drive-mirror`` / ``blockdev-mirror``: copy a disk to another node while it is in use,
then (on ``job-complete``) put the copy in its place.

As in QEMU 7.2:

* a ``mirror_top`` filter goes above the source and takes over its parents; every
  guest write through it marks its range dirty (``copy-mode`` ``write-blocking`` is
  accepted and converges the same way: each write is copied again);
* the job copies what ``sync`` selects (``full``: everything allocated in the chain;
  ``top``: what the source itself allocates; ``none``: only what is written during the
  job), then the dirty ranges, until the target holds the source's guest view: then
  the job goes ``ready`` (BLOCK_JOB_READY) and waits;
* ``job-complete`` copies what was written since, and the target replaces the
  source (or the node named by ``replaces``) in every parent: the pivot. A soft
  ``block-job-cancel`` after ready ends it the same way without the pivot; a forced
  cancel (or any cancel before ready) aborts it;
* ``drive-mirror`` opens (and in ``absolute-paths`` mode creates) the target itself,
  without its backing chain: at the end the target gets the source's backing
  (``absolute-paths``) or the chain named in its header (``existing``).

The checks are :mod:`engine.graph.rules.mirror`'s; the data is copied through the
nodes' I/O (:mod:`engine.graph.io`), as stream and commit copy it.

Slightly over 500 lines: one job, whose copy loop, dirty tracking, ready state and
pivot share the job's lock and state; split apart, the order of a pivot against a
guest write that arrives meanwhile would have to be followed across modules.
"""

from __future__ import annotations

import errno
import functools
import logging
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from engine.graph import rules
from engine.graph.io.base import NodeIO
from engine.graph.io.context import IOContext
from engine.graph.model import Backend, BlockGraph, GraphError, JobParent, Node
from engine.graph.opening import open_backing_from_header
from engine.jobs.copy import CHUNK, CopyError, WriteBatch, allocated_above, mirror_chunk
from engine.jobs.copy_jobs import GraphHooks
from engine.jobs.engine_jobs import jobs_of
from engine.jobs.errors import JobCommandError, JobFailed
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
    refresh_survivors,
    set_read_only,
    skip_filters,
)
from engine.jobs.job import ErrorAction, Job, JobDriver, OnError
from engine.jobs.mirror_cow import CowAlignment, cow_alignment
from engine.jobs.stream import new_job

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

log = logging.getLogger(__name__)

#: what a target keeps of its backing chain at the end (QEMU's BlockMirrorBackingMode)
LEAVE_BACKING = "leave"            # blockdev-mirror: the target stays as the user built it
SOURCE_BACKING = "source"          # drive-mirror absolute-paths: the source's backing
OPEN_BACKING = "open"              # drive-mirror existing: the chain in the target's header


class DirtyMap:
    """The job's dirty bitmap: one byte per granularity-sized chunk still to copy.

    Guest writes add to it from any thread (through the ``mirror_top`` filter); the
    job takes a run out *before* it reads it, so a write that lands during the copy
    marks the chunk again. Runs are taken from a cursor that goes round the disk, as
    QEMU's dirty iterator does."""

    def __init__(self, granularity: int, length: int) -> None:
        self.granularity = granularity
        self.length = length
        self._bits = bytearray(-(-length // granularity))
        self._cursor = 0
        self._lock = threading.Lock()

    def mark(self, offset: int, length: int) -> None:
        if length <= 0:
            return
        g = self.granularity
        first, last = offset // g, min((offset + length - 1) // g, len(self._bits) - 1)
        with self._lock:
            self._bits[first:last + 1] = b"\x01" * (last + 1 - first)

    def count(self) -> int:
        """Dirty bytes (whole chunks, the last one cut at the end of the disk)."""
        with self._lock:
            n = self._bits.count(1) * self.granularity
            if self._bits and self._bits[-1]:
                n -= len(self._bits) * self.granularity - self.length
            return n

    def clear(self, offset: int, length: int) -> None:
        """A copy took ``[offset, offset + length)`` besides its run (a widened copy)."""
        g = self.granularity
        first, last = offset // g, min((offset + length - 1) // g, len(self._bits) - 1)
        with self._lock:
            self._bits[first:last + 1] = bytes(last + 1 - first)

    def take(self, limit: int) -> tuple[int, int] | None:
        """Remove and return the next run of dirty chunks (at most ``limit`` bytes)."""
        g = self.granularity
        most = max(1, limit // g)
        with self._lock:
            first = self._bits.find(1, self._cursor)
            if first < 0:
                first = self._bits.find(1, 0)
                if first < 0:
                    return None
            end = self._bits.find(0, first, first + most)
            end = min(first + most, len(self._bits)) if end < 0 else end
            self._bits[first:end] = bytes(end - first)
            self._cursor = end
        return first * g, min(end * g, self.length)


def default_granularity(target: NodeIO) -> int:
    """QEMU's default: the target's cluster size, within [4 KiB, 64 KiB]."""
    cluster = target.cluster_size()
    return min(max(4096, cluster), 65536) if cluster else 65536


@dataclass
class MirrorLayers:
    """What the job reads: the source (its guest view), the layers whose allocation
    ``sync`` copies (top first) and the whole chain (for zero detection)."""

    source: NodeIO
    copied: list[NodeIO]
    chain: list[NodeIO]


@dataclass
class MirrorDriver(JobDriver):
    """The data side of a mirror job."""

    graph: BlockGraph
    source: Node
    target: Node
    sync: str
    granularity: int
    zero_target: bool
    base: Node | None = None
    on_source_error: OnError = OnError.REPORT
    on_target_error: OnError = OnError.REPORT
    buf_size: int = 0
    hooks: GraphHooks = field(default_factory=GraphHooks)
    job_type: str = "mirror"
    can_complete: bool = True
    should_complete: bool = False
    dirty: DirtyMap | None = None
    cow: CowAlignment | None = None
    _job: Job | None = None

    @property
    def ctx(self) -> IOContext:
        return self.graph.io

    def _layers(self) -> MirrorLayers:
        above: list[NodeIO] = []
        chain: list[NodeIO] = []
        node: Node | None = self.source
        copying = True
        while node is not None:
            if node is self.base:
                copying = False
            if not node.spec.is_filter and node.io is not None:
                chain.append(node.io)
                if copying:
                    above.append(node.io)
            node = filter_or_cow(node)
        assert self.source.io is not None
        return MirrorLayers(self.source.io, above, chain)

    def note_write(self, offset: int, length: int) -> None:
        """A guest write went through the ``mirror_top`` filter: copy it (again); the
        job's length grows by what is dirty now (QEMU's remaining = dirty count)."""
        if self.dirty is not None:
            self.dirty.mark(offset, length)
            job = self._job
            if job is not None:
                job.progress_total = max(job.progress_total,
                                         job.progress_current + self.dirty.count())

    def run(self, job: Job) -> Iterator[Any]:
        target = self.target.io
        assert target is not None
        with self.ctx.lock:
            length = self._layers().source.length()
            if length != target.length():
                raise JobFailed(errno.EINVAL, "Source and target image have different sizes")
        dirty = self.dirty = DirtyMap(self.granularity, length)
        self.cow = cow_alignment(self.target, self.granularity, length)
        self._job = job
        if length == 0:
            job.transition_to_ready()
            while not (self.should_complete or job.cancel_requested):
                yield Job.WAIT
            return
        with WriteBatch(target, background=False) as batch:
            if self.sync != "none":
                yield from self._initial(job, target, batch, length)
                if job.is_cancelled:
                    return
            while True:
                yield from self._copy_dirty(job, batch)
                if job.is_cancelled:
                    return
                yield from self._drain(job, batch)
                if job.is_cancelled:
                    return
                if dirty.count():
                    continue
                if not job.ready:
                    job.transition_to_ready()
                if (self.should_complete or job.cancel_requested) and not dirty.count():
                    break
                yield Job.WAIT
            batch.release()

    def _initial(self, job: Job, target: NodeIO, batch: WriteBatch,
                 length: int) -> Iterator[Any]:
        """QEMU's mirror_dirty_init: zero what the target holds (``full`` onto a target
        that may not read as zeros), then mark what ``sync`` copies."""
        assert self.dirty is not None
        if self.zero_target and self.target.discard != "unmap":
            # a target that cannot zero by unmapping: every range is copied (zeros too)
            self.dirty.mark(0, length)
            job.set_remaining(self.dirty.count())
            return
        if self.zero_target:
            for start, end in _target_data(target, length):
                yield
                if job.is_cancelled:
                    return
                yield from self._guard(job, functools.partial(batch.write_zeroes, start,
                                                              end - start))
        offset = 0
        while offset < length:
            yield
            if job.is_cancelled:
                return
            with self.ctx.lock:
                layers = self._layers()
                allocated, n = allocated_above(layers.copied, offset,
                                               min(length - offset, 1 << 30))
            n = max(n, 1)
            if allocated:
                self.dirty.mark(offset, n)
            offset += n
        job.set_remaining(self.dirty.count())

    def _copy_dirty(self, job: Job, batch: WriteBatch) -> Iterator[Any]:
        assert self.dirty is not None
        limit = max(self.buf_size or CHUNK, self.granularity)
        while True:
            job.set_remaining(self.dirty.count())
            yield
            if job.is_cancelled:
                return
            run = self.dirty.take(min(limit, CHUNK))
            if run is None:
                return
            start, end = run
            if self.cow is not None:
                start, end = run = self.cow.widen(start, end)
                self.dirty.clear(start, end - start)

            def step(s: int = start, e: int = end) -> None:
                with self.ctx.lock:
                    layers = self._layers()
                    mirror_chunk(layers.chain, layers.source, batch, s, e)

            ok = yield from self._guard(job, step, run)
            if ok:
                if self.cow is not None:
                    self.cow.copied(start, end)
                job.progress(end - start)
                job.account_copied(end - start)

    def _drain(self, job: Job, batch: WriteBatch) -> Iterator[Any]:
        """Write what the batch holds and flush the target (QEMU's mirror_flush)."""
        target = self.target.io
        assert target is not None

        def flush() -> None:
            with self.ctx.lock:
                batch.flush()
                try:
                    target.flush()
                except OSError as exc:
                    raise CopyError(False, exc.errno or errno.EIO, exc) from exc

        yield from self._guard(job, flush)

    def _guard(self, job: Job, work: Callable[[], None], run: tuple[int, int] | None = None,
               ) -> Generator[Any, None, bool]:
        """Run one request with the job's error policies; True when it succeeded.

        A failed copy marks its range dirty again (ignore: skipped for now, copied on a
        later pass; stop: retried once the job is resumed)."""
        while True:
            try:
                work()
                return True
            except CopyError as exc:
                job.on_error = self.on_source_error if exc.is_read else self.on_target_error
                action = job.error_action(exc.is_read, exc.errno)
                if action == ErrorAction.REPORT:
                    raise JobFailed(exc.errno) from exc
                if run is not None and self.dirty is not None:
                    self.dirty.mark(run[0], run[1] - run[0])
                if action == ErrorAction.IGNORE:
                    return False
                yield  # stopped: the job pauses here until resumed
                if job.is_cancelled:
                    return False
                if run is not None:
                    return False   # the range is dirty again: the next pass copies it

    #: the node ``replaces`` names, looked up again by ``job-complete``
    replaces: str | None = None

    def complete(self, job: Job) -> None:
        """QEMU's mirror_complete: only when ready, and ``replaces`` must still exist."""
        if not job.ready:
            raise JobCommandError(f"The active block job '{job.id}' cannot be completed")
        if self.replaces is not None and self.replaces not in self.graph.nodes:
            raise JobCommandError(f"Node name '{self.replaces}' not found")
        self.should_complete = True

    def cancel(self, job: Job, force: bool) -> bool:
        # before READY every cancel aborts; after it a soft cancel completes without pivot
        return force or not job.ready

    def prepare(self, job: Job) -> None:
        self.hooks.prepare(job)

    def abort(self, job: Job) -> None:
        self.hooks.abort(job)

    def clean(self, job: Job) -> None:
        self.hooks.clean(job)


def _target_data(target: NodeIO, length: int) -> list[tuple[int, int]]:
    """Ranges of the target that may not read as zeros (all of it over a backing file)."""
    node = target.node
    if node.children.get("backing") is not None:
        return [(0, length)]
    out: list[tuple[int, int]] = []
    for ext in target.block_status(0, length):
        if ext.state == "data":
            out.append((ext.start, ext.start + ext.length))
    return out


class MirrorGraph(GraphHooks):
    """The graph side of one mirror job: the filter, the job's links, the pivot."""

    def __init__(self, graph: BlockGraph, driver: MirrorDriver, filter_node: Node,
                 footprint: JobFootprint, replaces: str | None, backing_mode: str) -> None:
        self.graph = graph
        self.driver = driver
        self.filter_node: Node | None = filter_node
        self.footprint = footprint
        self.replaces = replaces
        self.backing_mode = backing_mode
        self.done = False

    def _exists(self, node: Node | None) -> bool:
        return node is not None and self.graph.nodes.get(node.name) is node

    def prepare(self, job: Job) -> None:
        self._exit(job, abort=False)

    def abort(self, job: Job) -> None:
        self._exit(job, abort=True)

    def _exit(self, job: Job, abort: bool) -> None:
        """QEMU's mirror_exit_common: drop the job's users of the target, give the target
        its backing, pivot when completing, then take the filter out."""
        if self.done:
            return
        self.done = True
        graph, drv = self.graph, self.driver
        src, target = drv.source, drv.target
        if self.filter_node is not None and self.filter_node.io is not None:
            self.filter_node.io.write_observer = None
        # the source and the target stay while the graph changes under them, even when
        # the job was their last user (QEMU takes a reference on both)
        held = [job_backend(graph, n, 0, PERM_ALL) for n in (src, target) if self._exists(n)]
        try:
            self._change_graph(job, abort, src, target)
        finally:
            below = [n for node in (src, target) if self._exists(node)
                     for n in nx.descendants(graph.g, node.name)]
            with graph.transaction():
                for holder in held:
                    graph.remove_backend(holder)
            # nodes the released source or target used, that others still hold, no
            # longer need what it needed
            refresh_survivors(graph, [graph.nodes.get(n) for n in below])

    def _change_graph(self, job: Job, abort: bool, src: Node, target: Node) -> None:
        graph, drv = self.graph, self.driver
        self.footprint.release(graph)
        if not abort and self._exists(target):
            self._attach_backing(src, target)
        to_replace = graph.nodes.get(self.replaces) if self.replaces else src
        refused = None
        if drv.should_complete and not abort and to_replace is not None:
            if to_replace.read_only != target.read_only:
                with graph.transaction():
                    set_read_only(graph, target, to_replace.read_only)
            try:
                with graph.transaction():
                    _replace_node(graph, to_replace, target)
                    graph.refresh_perms([target, to_replace])
            except (GraphError, rules.RuleViolation) as exc:
                # the pivot is refused (a parent of the source needs what another
                # parent of the target does not share): the graph stays, the job fails
                log.warning("mirror %s: %s", job.id, exc)
                refused = exc
        self._forget_filter()
        if refused is not None:
            raise JobFailed(errno.EPERM) from refused

    def _attach_backing(self, src: Node, target: Node) -> None:
        graph, drv = self.graph, self.driver
        bottom = skip_filters(target)
        if bottom is None:
            return
        if self.backing_mode == SOURCE_BACKING:
            backing = src if drv.sync == "none" else drv.base
            current = bottom.child("backing")
            if current is not backing and bottom.spec.cow:
                with graph.transaction():
                    graph.replace_child(bottom, "backing", backing, inherits=False)
                    graph.refresh_perms([bottom])
        elif self.backing_mode == OPEN_BACKING and bottom.header_backing \
                and bottom.child("backing") is None:
            with graph.transaction():
                open_backing_from_header(graph, bottom)

    def _forget_filter(self) -> None:
        flt = self.filter_node
        if self._exists(flt):
            assert flt is not None
            drop_job_filter(self.graph, flt)
        self.filter_node = None

    def clean(self, job: Job) -> None:
        self.footprint.release(self.graph)
        self._forget_filter()
        drv = self.driver
        refresh_survivors(self.graph, [drv.source, drv.target])
        for node in (drv.target, drv.source):
            if self._exists(node) and not node.parents and not node.monitor_owned:
                with self.graph.transaction():
                    self.graph.release(node)


def _replace_node(graph: BlockGraph, old: Node, new: Node) -> None:
    """QEMU's bdrv_replace_node: every parent of ``old`` now uses ``new`` — except the
    links inside ``new``'s own subtree (its backing chain down to ``old``)."""
    for link in list(old.parents):
        parent = link.parent
        if isinstance(parent, Node):
            if parent is new or rules.reaches(graph, new.name, parent.name):
                continue
            graph.replace_child(parent, link.role, new, inherits=False)
        elif isinstance(parent, Backend):
            graph.detach(link, release=False)
            graph.attach_backend_root(parent, new)


def start_mirror(engine: Engine, plan: rules.MirrorPlan, args: dict[str, Any], *,
                 backing_mode: str, zero_target: bool) -> Job:
    """The filter above the source, the job and its links, in QEMU's order; then copy.

    A refusal on the way undoes every graph change (the caller's transaction)."""
    graph, mgr = engine.graph, jobs_of(engine)
    source, target = graph.nodes[plan.source], graph.nodes[plan.target]
    assert target.io is not None
    granularity = args.get("granularity") or default_granularity(target.io)
    driver = MirrorDriver(
        graph=graph, source=source, target=target, sync=plan.sync, granularity=granularity,
        zero_target=zero_target, base=graph.nodes.get(plan.base) if plan.base else None,
        on_source_error=_on_error(args.get("on-source-error")),
        on_target_error=_on_error(args.get("on-target-error")),
        buf_size=args.get("buf-size", 0), replaces=plan.replaces)
    footprint = JobFootprint()
    created: list[Job] = []
    try:
        with graph.transaction(restore_names=False):
            flt = new_filter(graph, "mirror_top", args.get("filter-node-name"))
            graph.add_node(flt)
            graph.insert_filter_above(flt, source, "backing")
            graph.refresh_perms([flt, source])
            created.append(new_job(mgr, plan.job_id, driver, args))
            rules.check_target_outside_chain(graph, source.name, target.name)
            footprint.backends.append(job_backend(graph, target, PERM_W, PERM_WU))
            footprint.parent = graph.add_job(JobParent(plan.job_id, "mirror"), [
                ("main node", flt, PERM_CR, PERM_CR | PERM_WU | PERM_W),
                ("source", source, 0, PERM_WU | PERM_W | PERM_CR),
                ("target", target, 0, PERM_ALL)])
    except BaseException:
        for job in created:
            job.early_fail()
        raise
    assert flt.io is not None
    flt.io.write_observer = driver.note_write
    driver.hooks = MirrorGraph(graph, driver, flt, footprint, plan.replaces, backing_mode)
    created[0].start()
    return created[0]


def _on_error(value: str | None) -> OnError:
    if value is None:
        return OnError.REPORT
    return OnError.ENOSPC if value == "auto" else OnError(value)


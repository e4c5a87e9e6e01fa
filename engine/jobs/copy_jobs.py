"""Job drivers that move image data: stream, commit and active commit.

A driver gets, from the command that started it, a way to find the nodes it reads
and writes (a :class:`ChainLookup`, asked again whenever the graph changed: a
``blockdev-reopen`` during the job changes what the next chunk reads) and a
:class:`GraphHooks` object. The driver owns the data (chunked copy, ``on-error``,
flush), reading and writing through the nodes' I/O (:mod:`engine.graph.io`), through
the filter nodes the job inserted; the hooks own the graph and headers (filter nodes,
frozen links, the backing change at the end).

Order of effects, for crash safety: every copied byte is written and flushed
before ``prepare`` rewrites a header or changes the graph. While copying, the
target holds its metadata in memory (write-back mode, see
:mod:`engine.formats.qcow2_write`): the job's one flush publishes it. Every request
holds the graph's I/O lock, so a graph change waits for the chunk in flight.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from engine.graph.io.base import NodeIO
from engine.graph.io.context import IOContext
from engine.jobs.copy import (
    CHUNK,
    CopyError,
    WriteBatch,
    commit_step,
    dirty_runs,
    mirror_chunk,
    stream_step,
)
from engine.jobs.errors import JobFailed
from engine.jobs.job import ErrorAction, Job, JobDriver

T = TypeVar("T")


class ChainLookup(Generic[T]):
    """The nodes a job works on, looked up again after every graph change."""

    def __init__(self, ctx: IOContext, lookup: Callable[[], T]) -> None:
        self.ctx = ctx
        self._lookup = lookup
        self._epoch = -1
        self._value: T | None = None

    def get(self) -> T:
        if self._epoch != self.ctx.epoch or self._value is None:
            self._value = self._lookup()
            self._epoch = self.ctx.epoch
        return self._value


@dataclass
class StreamLayers:
    """``top`` (written), ``intermediates`` (whose allocation is copied up, top first)
    and ``source`` (read: the filter above the top, whose reads fall through to what
    lies below the top)."""

    top: NodeIO
    intermediates: list[NodeIO]
    source: NodeIO


@dataclass
class CommitLayers:
    """``above_base`` (whose allocation is copied down), ``base`` (written),
    ``source`` (read: the top's guest view) and ``chain`` (every layer from the top to
    the bottom, for the allocation an active commit copies by)."""

    above_base: list[NodeIO]
    base: NodeIO
    source: NodeIO
    chain: list[NodeIO] = field(default_factory=list)


class GraphHooks:
    """What a job does to the graph around its data copy; each runs under the engine lock."""

    def prepare(self, job: Job) -> None:
        """The copy succeeded: rewrite headers and relink nodes (may raise JobFailed)."""

    def abort(self, job: Job) -> None:
        """The job failed or was cancelled before ``prepare`` took effect."""

    def clean(self, job: Job) -> None:
        """Remove the job's filter node, unfreeze links, restore read-only states."""


@dataclass
class _Copy:
    """Shared loop of the copying drivers: chunks, pause points, on-error, progress."""

    length: int
    ctx: IOContext
    chunk: int = CHUNK
    first_error: int = 0
    #: commit retries an ignored failure (QEMU's commit loop does), stream skips it
    retry_ignored: bool = False
    #: write this batch out after every chunk, so that a write error is the chunk's
    #: (QEMU fails the chunk's own write): set when a filter below the target acts on
    #: writes (``blkdebug``), where batching would move the error to the job's end
    flush_each: WriteBatch | None = None
    #: the job's batch: what it holds is written before a failure ends the job, as
    #: QEMU wrote each chunk before the next one failed
    batch: WriteBatch | None = None

    def drain(self, job: Job, batch: WriteBatch) -> Iterator[Any]:
        """Write what the batch still holds, with the job's on-error policy."""
        while True:
            try:
                with self.ctx.lock:
                    batch.flush()
                return
            except CopyError as exc:
                action = job.error_action(False, exc.errno)
                if action == ErrorAction.REPORT:
                    raise JobFailed(exc.errno) from exc
                if action == ErrorAction.IGNORE:
                    self.first_error = self.first_error or exc.errno
                    return
                yield  # stopped: resume retries the write
                if job.cancel_requested:
                    return

    def write_out(self) -> None:
        """A read failed the job: write what the batch holds from the chunks before
        (a failure here is lost with the job: QEMU reports the first error). After a
        failed write the batch's data is dropped: QEMU does not write it again."""
        if self.batch is not None:
            with contextlib.suppress(CopyError), self.ctx.lock:
                self.batch.flush()

    def loop(self, job: Job, do_step: Any) -> Iterator[Any]:
        """``do_step(offset, max_len) -> (done, copied)`` until the whole length is done."""
        job.set_remaining(self.length)
        offset = 0
        while offset < self.length:
            yield
            if job.cancel_requested:
                return
            n = min(self.chunk, self.length - offset)
            try:
                with self.ctx.lock:
                    n, copied = do_step(offset, n)
                    if self.flush_each is not None:
                        self.flush_each.flush()
            except CopyError as exc:
                action = job.error_action(exc.is_read, exc.errno)
                if action == ErrorAction.REPORT:
                    if exc.is_read:
                        self.write_out()
                    raise JobFailed(exc.errno) from exc
                if action == ErrorAction.STOP or self.retry_ignored:
                    continue  # paused at the next pause point (stop); retried after it
                self.first_error = self.first_error or exc.errno
                n, copied = exc.done or n, 0
            job.progress(n)
            if copied:
                job.account_copied(copied)
            offset += n


@contextlib.contextmanager
def _write_back(target: NodeIO) -> Iterator[None]:
    """The job's target publishes metadata once per flush instead of once per batch."""
    target.begin_write_back()
    try:
        yield
    finally:
        target.end_write_back()


def writes_hooked(target: NodeIO) -> bool:
    """Whether a node that acts on writes (:attr:`NodeIO.hooks_requests`) lies below
    ``target`` where its writes go (its children but its backing)."""
    work = [target.node]
    seen: set[int] = set()
    while work:
        node = work.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.io is not None and node.io.hooks_requests:
            return True
        work.extend(link.child for role, link in node.children.items() if role != "backing")
    return False


def _flush(target: NodeIO, ctx: IOContext) -> None:
    try:
        with ctx.lock:
            target.flush()
    except Exception as exc:
        raise JobFailed(getattr(exc, "errno", None) or errno.EIO) from exc


@dataclass
class StreamDriver(JobDriver):
    """block-stream: pull the data of the layers between the top and the base up into
    the top. Nothing between them (the top is the base's overlay) means nothing to
    stream: QEMU then finishes at once with len 0."""

    layers: ChainLookup[StreamLayers]
    ctx: IOContext
    hooks: GraphHooks = field(default_factory=GraphHooks)
    chunk: int = CHUNK
    job_type: str = "stream"

    def run(self, job: Job) -> Iterator[Any]:
        with self.ctx.lock:
            first = self.layers.get()
            if not first.intermediates:
                return
            top, length = first.top, first.top.length()
        copy = _Copy(length, self.ctx, self.chunk)

        def step(offset: int, n: int) -> tuple[int, int]:
            now = self.layers.get()
            return stream_step(now.top, now.intermediates, now.source, offset, n, batch)

        # a batch's write is begun under the engine's lock in this thread; only its data
        # is written by the batch's writer thread, overlapping the next batch's reads
        with _write_back(top), WriteBatch(top) as batch:
            copy.batch = batch
            copy.flush_each = batch if writes_hooked(top) else None
            yield from copy.loop(job, step)
            if job.cancel_requested:
                return
            yield from copy.drain(job, batch)
            batch.release()
            _flush(top, self.ctx)
        if copy.first_error:
            raise JobFailed(copy.first_error)

    def prepare(self, job: Job) -> None:
        self.hooks.prepare(job)

    def abort(self, job: Job) -> None:
        self.hooks.abort(job)

    def clean(self, job: Job) -> None:
        self.hooks.clean(job)


@dataclass
class CommitDriver(JobDriver):
    """block-commit: push the data of the layers above the base down into the base.

    With ``active`` the job is an active commit: once in sync it goes ``ready`` and
    waits for ``job-complete`` (pivot) or a cancel. A base shorter than the top grows
    first (a fixed-size raw window refuses: the job fails).
    """

    layers: ChainLookup[CommitLayers]
    ctx: IOContext
    hooks: GraphHooks = field(default_factory=GraphHooks)
    chunk: int = CHUNK
    active: bool = False
    job_type: str = "commit"
    should_complete: bool = False

    @property
    def can_complete(self) -> bool:  # type: ignore[override]
        return self.active

    def run(self, job: Job) -> Iterator[Any]:
        with self.ctx.lock:
            first = self.layers.get()
            base, length = first.base, first.source.length()
            if not self.active:     # QEMU's commit counts the length before growing the base
                job.set_remaining(length)
            self._grow_base(base, length)
        copy = _Copy(length, self.ctx, self.chunk, retry_ignored=True)
        with _write_back(base), WriteBatch(base) as batch:
            copy.batch = batch
            copy.flush_each = batch if writes_hooked(base) else None
            if self.active:
                yield from self._mirror(job, copy, batch)
            else:
                yield from copy.loop(job, lambda off, n: self._step(off, n, batch))
            if job.cancel_requested:
                return
            yield from copy.drain(job, batch)
            batch.release()
            _flush(base, self.ctx)
        if copy.first_error:
            raise JobFailed(copy.first_error)
        if self.active:
            job.transition_to_ready()
            while not (self.should_complete or job.cancel_requested):
                yield Job.WAIT

    @staticmethod
    def _grow_base(base: NodeIO, length: int) -> None:
        if base.length() >= length:
            return
        try:
            base.truncate(length)
        except OSError as exc:
            raise JobFailed(exc.errno or errno.EIO) from exc
        except Exception as exc:
            raise JobFailed(getattr(exc, "errno", None) or errno.EIO) from exc

    def _step(self, offset: int, n: int, batch: WriteBatch) -> tuple[int, int]:
        now = self.layers.get()
        return commit_step(now.above_base, now.base, now.source, offset, n, batch)

    def _mirror(self, job: Job, copy: _Copy, batch: WriteBatch) -> Iterator[Any]:
        """Active commit copies like QEMU's mirror: only the ranges allocated above the
        base count as work (len = those bytes, at the base's cluster granularity)."""
        with self.ctx.lock:
            now = self.layers.get()
            granularity = now.base.cluster_size() or 65536
            runs = dirty_runs(now.above_base, copy.length, granularity)
        job.set_remaining(sum(e - s for s, e in runs))
        for start, end in runs:
            offset = start
            while offset < end:
                yield
                if job.cancel_requested:
                    return
                n = min(copy.chunk, end - offset)
                try:
                    with self.ctx.lock:
                        now = self.layers.get()
                        mirror_chunk(now.chain, now.source, batch, offset, offset + n)
                        if copy.flush_each is not None:
                            batch.flush()
                except CopyError as exc:
                    action = job.error_action(exc.is_read, exc.errno)
                    if action == ErrorAction.REPORT:
                        if exc.is_read:
                            copy.write_out()
                        raise JobFailed(exc.errno) from exc
                    continue
                job.progress(n)
                job.account_copied(n)
                offset += n

    def complete(self, job: Job) -> None:
        self.should_complete = True

    def cancel(self, job: Job, force: bool) -> bool:
        if not self.active:
            return True
        # Before READY every cancel is forced; after it, a soft cancel completes
        # the job without pivoting.
        return force or not job.ready

    def prepare(self, job: Job) -> None:
        self.hooks.prepare(job)

    def abort(self, job: Job) -> None:
        self.hooks.abort(job)

    def clean(self, job: Job) -> None:
        self.hooks.clean(job)

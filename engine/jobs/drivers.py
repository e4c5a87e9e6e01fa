"""Job drivers that move image data: stream, commit and active commit.

A driver gets opened images and a :class:`GraphHooks` object from the command
that started it. The driver owns the data (chunked copy, ``on-error``, flush);
the hooks own the graph and headers (filter nodes, frozen links, the backing
change at the end) so the drivers can be exercised on bare image chains.

Order of effects, for crash safety: every copied byte is written and flushed
before ``prepare`` rewrites a header or changes the graph. While copying, the
target holds its metadata in memory (write-back mode, see
:mod:`engine.formats.qcow2_write`): the job's one flush publishes it.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.formats import ChainReader
from engine.jobs.copy import (
    CHUNK,
    CopyError,
    WriteBatch,
    commit_step,
    copy_runs,
    dirty_runs,
    stream_step,
)
from engine.jobs.errors import JobFailed
from engine.jobs.faults import FaultInjector
from engine.jobs.job import ErrorAction, Job, JobDriver


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
    chunk: int = CHUNK
    first_error: int = 0
    #: commit retries an ignored failure (QEMU's commit loop does), stream skips it
    retry_ignored: bool = False

    def drain(self, job: Job, batch: WriteBatch) -> Iterator[Any]:
        """Write what the batch still holds, with the job's on-error policy."""
        while True:
            try:
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
                n, copied = do_step(offset, n)
            except CopyError as exc:
                action = job.error_action(exc.is_read, exc.errno)
                if action == ErrorAction.REPORT:
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
def _write_back(img: Any) -> Iterator[None]:
    """The job's target publishes metadata once per flush instead of once per batch."""
    img.begin_write_back()
    try:
        yield
    finally:
        img.end_write_back()


def _flush(img: Any) -> None:
    try:
        img.flush()
    except Exception as exc:
        raise JobFailed(getattr(exc, "errno", None) or errno.EIO) from exc


@dataclass
class StreamDriver(JobDriver):
    """block-stream: pull data from ``intermediates`` into ``top``.

    ``below_top`` is the chain under the top (intermediates, base and its backing),
    read for the guest view. An empty ``intermediates`` means nothing to stream
    (QEMU then finishes at once with len 0).
    """

    top: Any
    intermediates: Sequence[Any]
    below_top: Sequence[Any]
    hooks: GraphHooks = field(default_factory=GraphHooks)
    faults: FaultInjector | None = None
    chunk: int = CHUNK
    job_type: str = "stream"

    def run(self, job: Job) -> Iterator[Any]:
        if not self.intermediates:
            return
        wrap = self.faults.wrap if self.faults else (lambda img: img)
        top = wrap(self.top)
        inter = [wrap(i) for i in self.intermediates]
        reader = ChainReader([wrap(i) for i in self.below_top])
        copy = _Copy(self.top.virtual_size, self.chunk)
        with _write_back(self.top), WriteBatch(top) as batch:
            yield from copy.loop(job, lambda off, n: stream_step(top, inter, reader, off, n,
                                                                 batch))
            if job.cancel_requested:
                return
            yield from copy.drain(job, batch)
            batch.release()
            _flush(self.top)
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
    """block-commit: push data of ``above_base`` (top … base's overlay) into ``base``.

    ``top_chain`` is the whole chain from the top down (through the base), read for
    the guest view. With ``active`` the job is an active commit: once in sync it
    goes ``ready`` and waits for ``job-complete`` (pivot) or a cancel.
    """

    above_base: Sequence[Any]
    base: Any
    top_chain: Sequence[Any]
    hooks: GraphHooks = field(default_factory=GraphHooks)
    faults: FaultInjector | None = None
    chunk: int = CHUNK
    active: bool = False
    job_type: str = "commit"
    should_complete: bool = False

    @property
    def can_complete(self) -> bool:  # type: ignore[override]
        return self.active

    def run(self, job: Job) -> Iterator[Any]:
        wrap = self.faults.wrap if self.faults else (lambda img: img)
        layers = [wrap(i) for i in self.above_base]
        base = wrap(self.base)
        reader = ChainReader([wrap(i) for i in self.top_chain])
        copy = _Copy(self.top_chain[0].virtual_size, self.chunk, retry_ignored=True)
        with _write_back(self.base), WriteBatch(base) as batch:
            if self.active:
                yield from self._mirror(job, copy, batch, reader)
            else:
                yield from copy.loop(job, lambda off, n: commit_step(layers, base, reader, off,
                                                                     n, batch))
            if job.cancel_requested:
                return
            yield from copy.drain(job, batch)
            batch.release()
            _flush(self.base)
        if copy.first_error:
            raise JobFailed(copy.first_error)
        if self.active:
            job.transition_to_ready()
            while not (self.should_complete or job.cancel_requested):
                yield Job.WAIT

    def _mirror(self, job: Job, copy: _Copy, batch: WriteBatch,
                reader: ChainReader) -> Iterator[Any]:
        """Active commit copies like QEMU's mirror: only the ranges allocated above the
        base count as work (len = those bytes, at the base's cluster granularity)."""
        granularity = self.base.cluster_size or 65536
        runs = dirty_runs(self.above_base, self.top_chain[0].virtual_size, granularity)
        job.set_remaining(sum(e - s for s, e in runs))
        for start, end in runs:
            offset = start
            while offset < end:
                yield
                if job.cancel_requested:
                    return
                n = min(copy.chunk, end - offset)
                try:
                    copy_runs(reader, batch, [(offset, offset + n)])
                except CopyError as exc:
                    action = job.error_action(exc.is_read, exc.errno)
                    if action == ErrorAction.REPORT:
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

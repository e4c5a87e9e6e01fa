"""Moving guest data between layers of a backing chain, a chunk at a time.

Two copies exist, the data half of QEMU's stream and commit jobs:

* **stream** fills the *top* layer wherever it is unallocated but some layer
  between it and the base is allocated, with the guest view of the chain below
  the top; afterwards the top no longer needs those layers.
* **commit** writes into the *base* every range allocated in any layer above it,
  with the guest view of the top; afterwards the base holds what the top showed.

Both copy whole clusters of the layer written to (a partial cluster written into
an unallocated qcow2 cluster would lose the rest of its backing data), read the
guest view through the graph's nodes (:class:`engine.graph.io.base.NodeIO`: a read
goes through each node's current children), and never change what the guest sees
through the top: a process killed mid-copy leaves every image valid with the same
guest content. Header and graph changes come later, after a flush.

A *layer* here is a node's I/O: ``length()``, ``cluster_size()``, ``block_status()``
of its own allocation, ``readinto()`` of its guest view, ``write()``.

Errors are split as QEMU reports them: :class:`CopyError` says whether the read
(source) or the write (target) failed, with the errno, for ``on-error``.
"""

from __future__ import annotations

import errno as errno_mod
import mmap
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from engine.formats.buffers import aligned_buffer
from engine.formats.errors import ImageError

#: failures that are I/O errors of the job (anything else is a bug and fails it plainly)
IO_ERRORS = (OSError, ImageError)

Run = tuple[int, int]  # [start, end)

#: the most one job iteration handles (QEMU's STREAM_CHUNK and COMMIT_BUFFER_SIZE)
CHUNK = 512 << 10


class CopyError(Exception):
    """One chunk failed: ``is_read`` tells source from target, ``errno`` what happened."""

    def __init__(self, is_read: bool, errno: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.is_read = is_read
        self.errno = errno
        self.cause = cause
        #: the iteration's run length (QEMU counts it as done when the error is ignored)
        self.done: int | None = None


def _errno_of(exc: BaseException) -> int:
    err = getattr(exc, "errno", None)
    return err if isinstance(err, int) and err > 0 else errno_mod.EIO


def _merge(runs: list[Run]) -> list[Run]:
    runs.sort()
    out: list[Run] = []
    for s, e in runs:
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def layer_status(img: Any, offset: int, length: int) -> tuple[bool, int]:
    """Whether ``img`` itself allocates ``offset`` (data or zero), and for how many bytes.

    Like QEMU's bdrv_is_allocated: the run is cut at ``length``; past the layer's
    end nothing is allocated.
    """
    limit = min(offset + length, img.length())
    if limit <= offset:
        return False, length
    first = img.block_status(offset, limit - offset)[0]
    run = min(first.start + first.length, limit) - offset
    if first.state == "unallocated" and limit < offset + length and run == limit - offset:
        run = length  # unallocated up to the layer's end: and nothing beyond it
    return first.state != "unallocated", run


def allocated_above(layers: Sequence[Any], offset: int, length: int) -> tuple[bool, int]:
    """QEMU's bdrv_is_allocated_above over ``layers`` (top first): allocated, run length.

    Walking down, an unallocated layer narrows the run; the first allocating layer
    decides it.
    """
    n = length
    for img in layers:
        allocated, run = layer_status(img, offset, n)
        if allocated:
            return True, run
        n = min(n, run)
    return False, n


def zero_status(layers: Sequence[Any], offset: int, length: int) -> tuple[bool, int]:
    """Whether the guest view over ``layers`` (top first, down to the bottom of the
    chain) reads as zeros by its allocation at ``offset``, and for how many bytes
    (QEMU's block status above nothing: the first allocating layer decides; past a
    layer's end, or with nothing allocated at all, it is zeros)."""
    n = length
    for img in layers:
        limit = min(offset + n, img.length())
        if limit <= offset:
            return True, n
        first = img.block_status(offset, limit - offset)[0]
        run = min(first.start + first.length, limit) - offset
        if first.state != "unallocated":
            return first.state == "zero", run
        n = min(n, run)
    return True, n


def align_out(runs: list[Run], granularity: int | None, limit: int) -> list[Run]:
    """Widen runs to whole ``granularity`` units (clamped to ``limit``) and merge them."""
    if not granularity:
        return runs
    return _merge([(s - s % granularity, min(limit, -(-e // granularity) * granularity))
                   for s, e in runs])


_ZEROS = memoryview(bytes(32 << 20))

#: copy buffers kept between jobs: a fresh 32 MiB buffer costs page faults every time
_POOL: list[mmap.mmap] = []


def _take_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer (anonymous memory), so batches qualify for direct I/O."""
    while _POOL:
        buf = _POOL.pop()
        if len(buf) == size:
            return buf
    return aligned_buffer(size)


class WriteBatch:
    """Coalesces contiguous writes to one image into requests of up to ``limit`` bytes,
    written on a writer thread while the job reads the next batch.

    Each request costs Python work per cluster and per table it touches; copying
    512 KiB per request would pay that a thousand times per 512 MiB. Data waits
    here until the run breaks, the batch is full, or the job ends — unwritten data
    changes nothing the guest sees, so a crash or cancel in between only means
    less was copied. (The job's target is in write-back mode meanwhile: one
    barrier publishes all batches' metadata at the job's flush.)

    A full batch is handed off: its write is begun in the caller's thread, under the
    caller's locks (planned, clusters allocated and mapped in memory:
    :meth:`engine.graph.io.base.NodeIO.write_begin`), and only its data is written by
    the writer thread, which takes no lock; the job goes on reading into a second
    buffer. The read of one batch (a copy out of the page cache) and the write of the
    one before (a direct write to the disk) overlap instead of taking turns, as QEMU's
    coroutines overlap them; a request on the target's data waits for the write in
    flight (:func:`engine.formats.image.locked`). One batch at most is in flight; the
    next hand-off, :meth:`flush` and leaving the ``with`` block wait for it. A
    write that failed stays pending and is written again first, so an error
    surfaces at most one batch after its chunk, still as a write (target) error.
    Use the batch as a context manager: nothing may be written after the job's
    code that follows it (end of write-back, header changes, closing the image).
    """

    def __init__(self, target: Any, limit: int = 32 << 20, *, background: bool = True) -> None:
        self.target = target
        self.limit = limit
        #: False: every batch is written by the caller's thread when handed off (for a
        #: caller whose writes must not overlap anything it does between requests)
        self.background = background
        self._buf = _take_buffer(limit)
        self._spare: mmap.mmap | None = None
        self._start = 0
        self._len = 0
        self._writer: ThreadPoolExecutor | None = None
        #: the batch on the writer thread: (its write, start, buffer, length)
        self._inflight: tuple[Future[None], int, mmap.mmap, int] | None = None
        #: a batch whose write failed, written again before anything else
        self._failed: tuple[int, mmap.mmap, int] | None = None

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def release(self) -> None:
        """Give the buffers back for the next job (after the last flush)."""
        self.close()

    def close(self) -> None:
        """Wait for the write in flight (its failure no longer matters: the job is
        over or failing), stop the writer thread, and keep the buffers for the next
        job when nothing is left pending."""
        if self._inflight is not None:
            future, start, buf, n = self._inflight
            self._inflight = None
            if future.exception() is None:
                self._give_back(buf)
            elif self._failed is None:
                self._failed = (start, buf, n)
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._len == 0 and self._failed is None and self._buf:
            self._give_back(self._buf)
            self._buf = bytearray()     # type: ignore[assignment]
            if self._spare is not None:
                _POOL.append(self._spare)
                self._spare = None

    def _give_back(self, buf: mmap.mmap) -> None:
        """A buffer written out: the spare for the next batch, else the pool's."""
        if self._spare is None:
            self._spare = buf
        else:
            _POOL.append(buf)

    def view_for(self, start: int, n: int) -> tuple[memoryview, bool]:
        """A buffer to read ``[start, start+n)`` into; True when it joined the batch
        (False: an oversized run, to be written with :meth:`write_direct`)."""
        if self._len and (start != self._start + self._len or self._len + n > self.limit):
            self._hand_off()
        if n > self.limit:
            return memoryview(aligned_buffer(n)), False
        if not self._len:
            self._start = start
        view = memoryview(self._buf)[self._len:self._len + n]
        self._len += n
        return view, True

    def write_direct(self, start: int, data: memoryview) -> None:
        """Write outside the batch (oversized runs), after what is pending."""
        self.flush()
        _write(self.target, start, data)

    def write_zeroes(self, start: int, n: int) -> None:
        self.flush()
        try:
            self.target.write_zeroes(start, n)
        except ValueError:
            raise
        except IO_ERRORS as exc:
            raise CopyError(False, _errno_of(exc), exc) from exc

    def drop_last(self, n: int) -> None:
        """Forget the last ``n`` pending bytes (they turned out to be zeros)."""
        self._len -= n

    def flush(self) -> None:
        """Write everything pending and wait for it; on failure it stays pending
        (a retry writes it again)."""
        self._settle()
        if self._len:
            _write(self.target, self._start, memoryview(self._buf)[:self._len])
            self._len = 0

    def _settle(self) -> None:
        """Wait for the batch in flight, then write a failed one again (raising
        CopyError while it still fails)."""
        if self._inflight is not None:
            future, start, buf, n = self._inflight
            self._inflight = None
            exc = future.exception()
            if exc is not None:
                self._failed = (start, buf, n)
                raise exc
            self._give_back(buf)
        if self._failed is not None:
            start, buf, n = self._failed
            _write(self.target, start, memoryview(buf)[:n])
            self._failed = None
            self._give_back(buf)

    def _hand_off(self) -> None:
        """Start writing the pending batch on the writer thread and read on into the
        spare buffer (the write before it finished first)."""
        if not self.background:
            self.flush()
            return
        self._settle()
        if not self._len:
            return
        buf, start, n = self._buf, self._start, self._len
        finish = _begin(self.target, start, memoryview(buf)[:n])    # fails: stays pending
        spare, self._spare = self._spare, None
        self._buf = spare if spare is not None else _take_buffer(self.limit)
        self._len = 0
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="job-write")
        future = self._writer.submit(_finish, finish)
        self._inflight = (future, start, buf, n)


def _write(target: Any, start: int, data: memoryview) -> None:
    try:
        target.write(start, data)
    except ValueError:  # a request outside the image is a bug
        raise
    except IO_ERRORS as exc:
        raise CopyError(False, _errno_of(exc), exc) from exc


def _begin(target: Any, start: int, data: memoryview) -> Callable[[], None] | None:
    """Begin a batch's write in the caller's thread (under its locks): what is left to
    do, if anything, needs no lock (:meth:`engine.graph.io.base.NodeIO.write_begin`)."""
    try:
        finish: Callable[[], None] | None = target.write_begin(start, data)
    except ValueError:  # a request outside the image is a bug
        raise
    except IO_ERRORS as exc:
        raise CopyError(False, _errno_of(exc), exc) from exc
    return finish


def _finish(finish: Callable[[], None] | None) -> None:
    if finish is None:
        return
    try:
        finish()
    except IO_ERRORS as exc:
        raise CopyError(False, _errno_of(exc), exc) from exc


def copy_runs(source: Any, sink: WriteBatch, runs: list[Run], *,
              detect_zeroes: bool = True) -> int:
    """Copy the guest view of ``source`` over ``runs`` into ``sink``; returns bytes copied.

    With ``detect_zeroes`` (stream's copy-on-read does so) all-zero ranges become
    ``write_zeroes`` (a zero cluster, so backing data stays hidden) instead of data
    clusters full of zeros; commit writes what it read as data.
    """
    copied = 0
    for start, end in runs:
        n = end - start
        view, batched = sink.view_for(start, n)
        try:
            source.readinto(start, view)
        except ValueError:  # a request outside the image is a bug
            raise
        except IO_ERRORS as exc:
            if batched:
                sink.drop_last(n)
            raise CopyError(True, _errno_of(exc), exc) from exc
        if detect_zeroes and not view[0] and not view[-1] and view == _ZEROS[:n]:
            if batched:
                sink.drop_last(n)
            sink.write_zeroes(start, n)
        elif not batched:
            sink.write_direct(start, view)
        copied += n
    return copied


def dirty_runs(layers: Sequence[Any], length: int, granularity: int) -> list[Run]:
    """Ranges allocated in any of ``layers``, widened to ``granularity`` (mirror's bitmap)."""
    runs: list[Run] = []
    offset = 0
    while offset < length:
        allocated, n = allocated_above(layers, offset, length - offset)
        if allocated:
            runs.append((offset, offset + n))
        offset += max(n, 1)
    return align_out(runs, granularity, length)


def stream_step(top: Any, intermediates: Sequence[Any], source: Any,
                offset: int, length: int, sink: WriteBatch) -> tuple[int, int]:
    """One iteration of QEMU's stream loop at ``offset``: (bytes done, bytes copied).

    The run is where the top's allocation, then the intermediates' allocation, stays
    the same (at most ``length``). Runs allocated in an intermediate but not in the
    top are copied up, widened to whole top clusters (those are unallocated too).
    """
    try:
        in_top, n = layer_status(top, offset, length)
        if in_top:
            return n, 0
        in_between, n = allocated_above(intermediates, offset, n)
    except ValueError:  # a request outside the image is a bug
        raise
    except IO_ERRORS as exc:
        raise CopyError(True, _errno_of(exc), exc) from exc
    if not in_between:
        return n, 0
    return n, _copy_run(source, sink, align_out([(offset, offset + n)], top.cluster_size(),
                                                top.length()), n)


def commit_step(above_base: Sequence[Any], base: Any, top_view: Any,
                offset: int, length: int, sink: WriteBatch) -> tuple[int, int]:
    """One iteration of QEMU's commit loop at ``offset``: (bytes done, bytes copied).

    A run allocated in some layer above the base is written into the base from the
    guest view of the top, widened to whole base clusters (the widening rewrites the
    base's own view unchanged).
    """
    try:
        allocated, n = allocated_above(above_base, offset, length)
    except ValueError:  # a request outside the image is a bug
        raise
    except IO_ERRORS as exc:
        raise CopyError(True, _errno_of(exc), exc) from exc
    if not allocated:
        return n, 0
    limit = min(base.length(), top_view.length())
    runs = [(s, min(e, limit)) for s, e in
            align_out([(offset, offset + n)], base.cluster_size(), limit) if s < limit]
    return n, _copy_run(top_view, sink, runs, n, detect_zeroes=False)


def mirror_chunk(chain: Sequence[Any], source: Any, sink: WriteBatch, start: int,
                 end: int) -> int:
    """One chunk of an active commit, as QEMU's mirror copies it: ranges whose
    allocation in ``chain`` (top to bottom) reads as zeros are written as zeros, the
    rest copied as data. Returns bytes copied."""
    try:
        pieces: list[tuple[int, int, bool]] = []
        pos = start
        while pos < end:
            zero, run = zero_status(chain, pos, end - pos)
            run = max(1, min(run, end - pos))
            pieces.append((pos, pos + run, zero))
            pos += run
    except ValueError:  # a request outside the image is a bug
        raise
    except IO_ERRORS as exc:
        raise CopyError(True, _errno_of(exc), exc) from exc
    for s, e, zero in pieces:
        if zero:
            sink.write_zeroes(s, e - s)
        else:
            copy_runs(source, sink, [(s, e)], detect_zeroes=False)
    return end - start


def _copy_run(source: Any, sink: WriteBatch, runs: list[Run], n: int, *,
              detect_zeroes: bool = True) -> int:
    try:
        return copy_runs(source, sink, runs, detect_zeroes=detect_zeroes)
    except CopyError as exc:
        exc.done = n
        raise

"""Bulk copies for the offline edits: large requests, zero detection, writes beside reads.

An offline edit moves up to a whole disk. Reading it is a copy out of the page cache;
writing it is the disk's work (a qcow2 written in write-back mode sends whole clusters
with ``O_DIRECT``). Done one after the other, each waits for the other. Here the caller
reads a buffer and decides what to write while a writer thread writes the buffer read
before (the write releases the interpreter lock while the disk works), so an edit takes
about as long as its writes alone — what ``qemu-img`` gets from its parallel requests.

Zero detection compares memory with ``memcmp`` (no copies): a unit of all zeros is not
written, as ``qemu-img convert`` leaves a zero run of 4 KiB or more unwritten (on a
qcow2 target its requests are aligned to the cluster, so a cluster of zeros stays
unallocated). Buffers are page-aligned (:mod:`engine.formats.buffers`), so whole
clusters qualify for direct I/O.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import queue
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import cast

from engine.formats.buffers import aligned_buffer
from engine.formats.image import Image

#: bytes read and written per request (qemu-img convert: 2 MiB, up to 16 MiB)
CHUNK = 4 << 20
#: buffers in flight: one being read, one being written, one ready in between
DEPTH = 3

Range = tuple[int, int]

# -- comparing memory without copying it ---------------------------------------------------


#: libc's ``memcmp(a, b, n)`` on two addresses
Memcmp = Callable[[int, int, int], int]


def _libc_memcmp() -> Memcmp | None:
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").memcmp
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    fn.restype = ctypes.c_int
    return cast(Memcmp, fn)


_memcmp = _libc_memcmp()


class Buffer:
    """A page-aligned buffer of ``size`` bytes and its address (for ``memcmp``)."""

    def __init__(self, size: int) -> None:
        self._map: mmap.mmap = aligned_buffer(size)
        self.view = memoryview(self._map)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))

    def same(self, other: Buffer, start: int, end: int) -> bool:
        """Whether ``self[start:end]`` equals ``other[start:end]``."""
        if _memcmp is not None:
            return _memcmp(self.address + start, other.address + start, end - start) == 0
        return self._map[start:end] == other._map[start:end]

    def zero(self, start: int, end: int) -> bool:
        """Whether ``self[start:end]`` holds only zeros."""
        n = end - start
        if _memcmp is not None:
            return _memcmp(self.address + start, _zero_address(n), n) == 0
        return self._map[start:end] == bytes(n)


#: buffers kept between edits: fresh anonymous memory costs a page fault per 4 KiB
#: (16 MiB of buffers: about 10 ms on a 2-core VM), every time
_SPARE: list[Buffer] = []
#: the most buffers kept (a pipeline's and a comparison buffer)
_SPARE_MAX = DEPTH + 1


def take_buffer(size: int) -> Buffer:
    """A buffer of ``size`` bytes, one kept from an earlier edit when there is one."""
    while True:
        try:
            buf = _SPARE.pop()
        except IndexError:
            return Buffer(size)
        if len(buf.view) == size:
            return buf


def give_back(buf: Buffer) -> None:
    """Keep ``buf`` for the next edit (its content is not cleared: every user fills it)."""
    if len(_SPARE) < _SPARE_MAX:
        _SPARE.append(buf)


@functools.lru_cache(maxsize=4)
def _zero_page(n: int) -> tuple[ctypes.Array[ctypes.c_char], int]:
    buf = ctypes.create_string_buffer(n)
    return buf, ctypes.addressof(buf)


def _zero_address(n: int) -> int:
    size = 1 << max(12, (n - 1).bit_length())    # one cached buffer per power of two
    return _zero_page(size)[1]


def units(start: int, end: int, unit: int) -> Iterable[Range]:
    """``[start, end)`` cut at the multiples of ``unit`` (guest offsets)."""
    pos = start
    while pos < end:
        stop = min(end, (pos // unit + 1) * unit)
        yield pos, stop
        pos = stop


def nonzero_runs(buf: Buffer, base: int, length: int, unit: int) -> list[Range]:
    """The guest ranges of ``buf[:length]`` (read from guest offset ``base``) that hold
    a non-zero byte, in whole ``unit``\\ s (aligned on guest offsets), merged."""
    runs: list[Range] = []
    for a, b in units(base, base + length, unit):
        if buf.zero(a - base, b - base):
            continue
        if runs and runs[-1][1] == a:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    return runs


def windows(ranges: Iterable[Range], size: int, unit: int, chunk: int = CHUNK,
            gap: int = 1 << 20) -> list[Range]:
    """Requests that cover ``ranges`` (sorted guest ranges): widened to whole units,
    joined across gaps up to ``gap`` (one read instead of two; what lies between
    reads as what it is), and cut into pieces of at most ``chunk`` at multiples of it."""
    merged: list[list[int]] = []
    for s, e in ranges:
        s = s // unit * unit
        e = min(size, -(-e // unit) * unit)
        if s >= e:
            continue
        if merged and s <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[Range] = []
    for s, e in merged:
        pos = s
        while pos < e:
            stop = min(e, (pos // chunk + 1) * chunk)
            out.append((pos, stop))
            pos = stop
    return out


# -- the writer thread ------------------------------------------------------------------------

#: ``("data", guest offset, start, end)``: write ``buffer[start:end]`` there;
#: ``("zero", guest offset, 0, length)``: write zeros there
Op = tuple[str, int, int, int]


class WritePipeline:
    """Writes into ``out`` on a thread of its own, in the order they were submitted.

    The caller takes a free buffer (:meth:`buffer`), fills it, and hands it over with
    the writes to make from it (:meth:`submit`); the buffer comes back free once they
    are done. A failed write is raised by the next call, and by :meth:`close`; nothing
    is written after it.
    """

    def __init__(self, out: Image, chunk: int = CHUNK, depth: int = DEPTH) -> None:
        self.out = out
        self.chunk = chunk
        self._free: queue.SimpleQueue[Buffer] = queue.SimpleQueue()
        self._depth = depth
        for _ in range(depth):
            self._free.put(take_buffer(chunk))
        self._work: queue.SimpleQueue[tuple[Buffer | None, list[Op]] | None] = \
            queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="offline-writer", daemon=True)
        self._thread.start()
        self._closed = False

    def buffer(self) -> Buffer:
        """A free buffer (waits until the writer has finished with one)."""
        self._raise()
        buf = self._free.get()
        self._raise()
        return buf

    def submit(self, buf: Buffer | None, ops: list[Op]) -> None:
        """Make ``ops`` after everything submitted before; ``buf`` is free afterwards."""
        self._raise()
        self._work.put((buf, ops))

    def release(self, buf: Buffer) -> None:
        """Give back a buffer that needs no writes."""
        self._free.put(buf)

    def close(self) -> None:
        """Wait for every write; raise the first that failed."""
        if not self._closed:
            self._closed = True
            self._work.put(None)
            self._thread.join()
            self._keep_buffers()
        self._raise()

    def _keep_buffers(self) -> None:
        """Once the writer has stopped: its buffers, all free again, for the next edit."""
        buffers: list[Buffer] = []
        while not self._free.empty():
            buffers.append(self._free.get())
        if len(buffers) == self._depth:
            for buf in buffers:
                give_back(buf)

    def __enter__(self) -> WritePipeline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        self._error = self._error or exc     # stop writing; the caller's error wins
        if not self._closed:
            self._closed = True
            self._work.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        out = self.out
        while True:
            item = self._work.get()
            if item is None:
                return
            buf, ops = item
            try:
                if self._error is None:
                    for kind, offset, a, b in ops:
                        if kind == "data":
                            assert buf is not None
                            out.write(offset, buf.view[a:b])
                        else:
                            out.write_zeroes(offset, b)
            except BaseException as exc:      # reported to the caller's thread
                self._error = exc
            finally:
                if buf is not None:
                    self._free.put(buf)

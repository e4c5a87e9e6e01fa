"""Writing guest data into a qcow2 image: allocation, refcounts, crash-safe order.

One ``write()`` call is planned as a whole, then carried out in three phases:

A. count and fill: refcount blocks are updated for every cluster the request
   allocates (new data clusters, new L2 tables, new refcount blocks), then the
   guest data (with copy-on-write fill for partial clusters) and the content of
   new, still unreferenced L2 tables are written;
B. barrier (``fdatasync``); new refcount-table entries; barrier when there were any;
C. publish: the L2 entries and L1 entries that reference the new clusters;
D. release: refcounts of clusters no longer referenced (compressed clusters that
   were overwritten) are decremented.

**Compressed writes** (:meth:`Qcow2Writer.write_compressed`, what QEMU's ``compress``
filter and ``qemu-io write -c`` ask for) deflate one whole cluster into a run of bytes
that may share a host cluster with other compressed clusters, as QEMU packs them: each
host cluster a run touches counts one reference per run. They never overwrite an
allocated cluster (QEMU refuses with EIO) and are always published at once.

So on disk a count is never lower than the number of references, and no entry
points at a cluster whose data is not written: a crash can only leak clusters.
Clusters are placed where QEMU places them, so both writers leave the same map: the
first free run from where the search stands (the image's start after opening, and
back to any cluster given back), L2 tables when their first cluster comes, and a
request's clusters continuing one contiguous host range while they can; a sequential
write into new space still becomes one ``pwritev`` per range.

**Zero writes and discards** are cut at cluster boundaries as QEMU's block layer cuts
them; whole clusters get the zero flag (or, in version 2, are discarded), and part of
a cluster is zeroed by flag only when the rest already reads as zeros through the
chain and the cluster holds no data, written as zero data otherwise.

**Write-back mode** (:meth:`Qcow2Writer.begin_write_back`), for jobs that copy large
amounts of data: phases A (refcounts), B, C and D of many requests are held in
memory and carried out together by :meth:`Qcow2Writer.publish` — at a flush, at the
end of the mode, or after :data:`CHECKPOINT_BYTES` of new clusters — in the same
order, so one barrier covers all of their data instead of one barrier per request.
This is what QEMU's qcow2 metadata cache does (an L2 table is written back only
after a flush of the data it references). In between, the file holds data in
clusters nothing references yet: a crash loses the unpublished copies, never an
image. A failed request is undone in memory, leaving earlier pending requests
intact; a failed barrier drops everything pending (its data may not be on disk)
and the next flush reports the loss. Whole aligned clusters of data are written with
direct I/O in this mode (:mod:`engine.formats.direct`), and so are large runs of new
clusters outside it (:data:`DIRECT_REQUEST`).

Why this module is long (about 1150 lines, one class): its refcounts, allocation,
write-back queue and request phases share one set of in-memory tables whose order of
writing to disk *is* the crash-safety argument above; split across modules, that order
could no longer be checked in one reading. What does not share it lives beside it:
header layout, repair, resize, backing files, the directories and direct I/O.
"""

from __future__ import annotations

import errno
import logging
import struct
import threading
import zlib
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.formats import qcow2_header as hdr
from engine.formats import qcow2_resize
from engine.formats.direct import DirectWriter
from engine.formats.errors import (
    CorruptImageError,
    ImageError,
    UnsupportedImageError,
)
from engine.formats.image import file_error
from engine.formats.qcow2_directories import BITMAP_IN_USE
from engine.formats.qcow2_layout import (
    K_UNALLOC,
    K_ZERO,
    OFFSET_MASK,
    OFLAG_COMPRESSED,
    OFLAG_COPIED,
    OFLAG_ZERO,
    be_array,
    to_be,
)
from engine.formats.qcow2_refcount import (
    fill_refcounts,
    first_free,
    get_refcount,
    set_refcount,
)
from engine.formats.qcow2_repair import rebuild_refcounts

if TYPE_CHECKING:
    from engine.formats.qcow2 import Qcow2Image

REFTABLE_OFFSET_MASK = ~0x1FF & ((1 << 64) - 1)
IOV_MAX = 1024
log = logging.getLogger(__name__)

#: in write-back mode, metadata is published at the latest after this many new clusters' bytes
CHECKPOINT_BYTES = 1 << 30
#: a request outside write-back mode that allocates writes a run of data at least this
#: large with direct I/O too: the barrier that follows its data would write it out of
#: the page cache at once anyway, after paying for fresh cache pages (QEMU's qcow2
#: defers that barrier to the next flush instead). Rewrites in place, which need no
#: barrier, stay in the page cache.
DIRECT_REQUEST = 1 << 20


class _Undo:
    """What one write-back request changed in memory, to take back if it fails."""

    def __init__(self, writer: Qcow2Writer, first_cl: int, last_cl: int) -> None:
        img = writer.img
        self.writer = writer
        self.lo = first_cl >> img.l2_bits
        self.hi = (last_cl >> img.l2_bits) + 1
        self.l1 = img.l1[self.lo:self.hi]
        self.tables: dict[int, tuple[array[int], array[int]]] = {}
        #: held in the cache for the request, so the table restored is the one in use
        self.pinned: set[int] = set()
        for l1i in range(self.lo, self.hi):
            table = img._l2(l1i)
            if table is not None:
                self.tables[l1i] = (table, array("Q", table))
                off = img.l1[l1i] & OFFSET_MASK
                if off not in img._l2_pinned:
                    img._l2_pinned.add(off)
                    self.pinned.add(off)
        self.allocs: list[tuple[int, int]] = []
        self.releases = len(writer._pending_releases)

    def restore(self) -> None:
        img = self.writer.img
        for l1i in range(self.lo, self.hi):
            if l1i not in self.tables and img.l1[l1i] & OFFSET_MASK:
                off = img.l1[l1i] & OFFSET_MASK     # a table this request created
                img._l2_cache.pop(off, None)
                img._l2_pinned.discard(off)
                self.writer._tables.pop(l1i, None)
                self.writer._pending_fresh.discard(l1i)
                self.writer._pending.pop(l1i, None)
        img.l1[self.lo:self.hi] = self.l1
        for table, saved in self.tables.values():
            table[:] = saved
        del self.writer._pending_releases[self.releases:]
        for start, n in self.allocs:     # never referenced: counted free again
            self.writer._set_run(start, n, 0)

    def unpin(self) -> None:
        """Release the request's pins, except on tables that now hold pending updates."""
        img = self.writer.img
        pending = {img.l1[l1i] & OFFSET_MASK for l1i in self.writer._tables}
        img._l2_pinned.difference_update(self.pinned - pending)


class InflightWrite:
    """The data of one request begun by :meth:`Qcow2Writer.write_begin`, mapped in memory
    and not yet written. :meth:`run` writes it (any thread, no lock: it touches no
    table); the image's next locked request waits for it and settles it."""

    def __init__(self, writer: Qcow2Writer, undo: _Undo,
                 pieces: list[tuple[int, list[memoryview]]], offset: int,
                 length: int) -> None:
        self.writer = writer
        self.undo = undo
        self.pieces = pieces
        #: the guest range written: the only data a reader must wait for
        self.offset = offset
        self.length = length
        self.done = threading.Event()
        self.error: BaseException | None = None

    def overlaps(self, offset: int, length: int) -> bool:
        """Whether guest ``[offset, offset+length)`` meets the clusters being written."""
        cs = self.writer.cs
        start = self.offset - self.offset % cs
        end = self.offset + self.length
        return offset < end + (-end % cs) and start < offset + length

    def run(self) -> None:
        """Write the data; raises what failed (the image undoes the request when it
        settles it)."""
        try:
            for host, bufs in self.pieces:
                self.writer._data_writev(host, bufs, True)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.pieces = []
            self.done.set()


class Qcow2Writer:
    """The mutable side of a writable :class:`Qcow2Image` (created at its first write)."""

    def __init__(self, img: Qcow2Image) -> None:
        why = img.unsupported_for_writing()
        if why:
            raise UnsupportedImageError(why, img.path, 72)
        if img.header.dirty:
            rebuild_refcounts(img)
        self.img = img
        self.path = img.path
        self.cs = img.cluster_size
        self.bits = img.cluster_bits
        h = img.header
        self.rc_bits = h.refcount_bits
        self.rbe = self.cs * 8 // self.rc_bits
        self.rbe_bits = self.rbe.bit_length() - 1
        self.rc_max = (1 << self.rc_bits) - 1
        self.write_back = False
        self._direct = DirectWriter(img.store)     # bulk data in write-back mode
        self._undo: _Undo | None = None
        #: while a request is planned by :meth:`write_begin`: its data writes, for later
        self._deferred: list[tuple[int, list[memoryview]]] | None = None
        #: clusters the request in progress allocated, and whether it began to publish
        #: them (see :meth:`_free_unpublished`)
        self._allocated: list[tuple[int, int]] = []
        self._publishing = False
        #: the loss a failed barrier caused in write-back mode, reported by the next flush
        self.lost: ImageError | None = None
        self._load()
        self._clear_autoclear()

    # -- state ------------------------------------------------------------------------------
    def _load(self) -> None:
        h = self.img.header
        raw = self._pread(h.refcount_table_offset, h.refcount_table_clusters * self.cs)
        self.table = be_array(raw.ljust(h.refcount_table_clusters * self.cs, b"\0"))
        self.blocks: dict[int, bytearray] = {}
        self.dirty: dict[int, list[int]] = {}       # block offset -> [lo, hi) dirty bytes
        self.new_entries: set[int] = set()          # reftable slots to write after a barrier
        self.end = -(-self.img.file_size() // self.cs)   # clusters the file spans
        #: where the search for free clusters starts (QEMU starts at the image's start)
        self.free_index = 0
        # write-back mode: what requests changed in memory and is not on disk yet
        self._pending: dict[int, list[int]] = {}    # L1 index -> [lo, hi) L2 entries
        self._pending_fresh: set[int] = set()       # L1 indices with a new L2 table
        self._pending_releases: list[tuple[int, int]] = []
        self._pending_bytes = 0
        self._tables: dict[int, array[int]] = {}         # L1 index -> its pinned L2 table
        self.img._l2_pinned.clear()
        #: where the next compressed run may start inside a partly used host cluster (0: none)
        self._free_byte = 0

    def forget_blocks(self) -> None:
        """The image now reads another file: refcount blocks are read again from it
        when needed (the refcount table stays as read, as in QEMU)."""
        self.blocks = {}
        self.dirty = {}
        self._free_byte = 0
        self._direct.close()
        self._direct = DirectWriter(self.img.store)

    def reload(self) -> None:
        """Forget every cached table after a failed request: re-read from disk."""
        self.img.l1 = self.img._load_l1()
        self.img._l2_cache.clear()
        self._load()

    # -- write-back mode ----------------------------------------------------------------------
    def begin_write_back(self) -> None:
        """Hold metadata updates in memory until :meth:`publish` (see the module doc)."""
        self.write_back = True
        self.lost = None

    def end_write_back(self) -> None:
        """Publish what is pending and go back to publishing every request at once."""
        try:
            self.publish()
        finally:
            self.write_back = False
            self.lost = None
            self._direct.close()

    @property
    def has_pending(self) -> bool:
        return bool(self._pending or self._pending_fresh or self._pending_releases
                    or self.dirty or self.new_entries)

    def publish(self) -> None:
        """Write pending metadata in the crash-safe order: counts and new tables, barrier,
        new refcount-table entries (barrier), L2 and L1 entries, then releases.

        A failed write keeps everything pending (publishing again repeats it); a
        failed barrier means written data may be lost, so nothing pending is ever
        published: it is dropped and :attr:`lost` is set.
        """
        if not self.has_pending:
            return
        img = self.img
        self.write_blocks()
        for l1i in sorted(self._pending_fresh):
            self._l2_write(to_be(self._tables[l1i]), img.l1[l1i] & OFFSET_MASK, fresh=True)
        self._barrier_or_drop()
        if self.new_entries:
            self.write_new_entries()
            self._barrier_or_drop()
        for l1i, (lo, hi) in sorted(self._pending.items()):
            if l1i not in self._pending_fresh:
                off = img.l1[l1i] & OFFSET_MASK
                self._l2_write(to_be(self._tables[l1i][lo:hi]), off + 8 * lo)
        if self._pending_fresh:
            lo, hi = min(self._pending_fresh), max(self._pending_fresh) + 1
            self.img.debug_event("l1_update")
            self._pwrite(to_be(img.l1[lo:hi]), img.header.l1_table_offset + 8 * lo)
        self._pending.clear()
        self._pending_fresh.clear()
        self._tables.clear()
        img._l2_pinned.clear()
        self._pending_bytes = 0
        releases, self._pending_releases = self._pending_releases, []
        if releases:
            self._barrier_or_drop()     # the new references are on disk before the old go
            self._apply_releases(releases)

    def _barrier_or_drop(self) -> None:
        try:
            self.barrier()
        except ImageError as exc:
            self.reload()
            self.lost = exc
            raise

    def _ensure_table_room(self, length: int) -> None:
        """Grow the refcount table before a write-back request could need it to.

        Growing it mid-request would switch tables under pending metadata; done
        here, after publishing, a failure leaves nothing pending to lose.
        """
        clusters = -(-length // self.cs) + 1
        clusters += -(-clusters // self.img.l2_entries) + 1
        clusters += -(-clusters // self.rbe) + 2
        last = (self.end + clusters) >> self.rbe_bits
        if last + 1 < len(self.table):
            return
        self.publish()
        try:
            self._grow_table(last + 1)
        except BaseException:
            self.reload()
            raise

    def _write_back_request(self, offset: int, length: int,
                            request: Callable[[int, int], None],
                            deferred: list[tuple[int, list[memoryview]]] | None = None,
                            ) -> _Undo | None:
        """Carry out one request in write-back mode; with ``deferred``, its data writes
        are collected there instead of written, and the request's undo record is
        returned still pinned (see :class:`InflightWrite`)."""
        if self._pending_bytes >= CHECKPOINT_BYTES:
            self.publish()
        self._ensure_table_room(length)
        undo = _Undo(self, offset >> self.bits, (offset + length - 1) >> self.bits)
        self._undo = undo
        self._deferred = deferred
        try:
            request(offset, length)
        except BaseException:
            undo.restore()
            undo.unpin()
            raise
        finally:
            self._undo = None
            self._deferred = None
        if deferred is not None:
            return undo
        undo.unpin()
        if self._pending_bytes >= CHECKPOINT_BYTES:
            self.publish()
        return None

    def write_begin(self, offset: int, view: memoryview) -> InflightWrite | None:
        """Plan a write and map it in memory, leaving its data to be written by
        :meth:`InflightWrite.run` — on another thread, without the image's lock, while
        the caller goes on (a job reads its next batch meanwhile, as QEMU's coroutines
        overlap a read and the write before it). Only in write-back mode, where nothing
        reaches the disk's metadata before a flush, and on a host file (a store that
        is a node, such as blkdebug, takes the graph's locks to write); otherwise the
        write is done at once and None returned.

        Until the image has taken the write in (:meth:`settle`, called by the next
        locked request on the image), no other request reads or writes the image's
        data: its tables already map clusters whose data is not written yet.
        """
        if not self.write_back or self.img.store.fd is None:
            self.write(offset, view)
            return None
        pieces: list[tuple[int, list[memoryview]]] = []
        undo = self._write_back_request(offset, len(view),
                                        lambda o, _n: self._write(o, view), pieces)
        assert undo is not None
        return InflightWrite(self, undo, pieces, offset, len(view))

    def settle(self, inflight: InflightWrite) -> None:
        """Take in a data write once it has landed: it stays mapped, or, when it failed,
        the request is undone in memory (its clusters free again, its entries as they
        were), as a failed request is in write-back mode."""
        inflight.done.wait()
        if inflight.error is not None:
            inflight.undo.restore()
        inflight.undo.unpin()

    def _defer(self, fresh: list[int], tables: dict[int, array[int]],
               touched: dict[int, list[int]], releases: list[tuple[int, int]]) -> None:
        """Phases B to D of a request in write-back mode: remembered, pinned in cache."""
        img = self.img
        self._pending_fresh.update(fresh)
        for l1i in set(touched) | set(fresh):
            table = tables[l1i]
            self._tables[l1i] = table
            img._l2_pinned.add(img.l1[l1i] & OFFSET_MASK)
            if l1i in fresh:
                continue
            lo, hi = touched[l1i]
            p = self._pending.get(l1i)
            if p is None:
                self._pending[l1i] = [lo, hi]
            else:
                p[0], p[1] = min(p[0], lo), max(p[1], hi)
        self._pending_releases.extend(releases)

    def close(self) -> None:
        self._direct.close()

    def _pread(self, offset: int, length: int) -> bytes:
        try:
            return self.img.store.pread(length, offset)
        except OSError as exc:
            raise file_error(exc, self.path, "Could not read", offset) from exc

    def _pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += self.img.store.pwrite(view[done:], offset + done)
        except OSError as exc:
            raise file_error(exc, self.path, "Could not write", offset + done) from exc

    def _l2_write(self, data: bytes | bytearray | memoryview, offset: int, *,
                  fresh: bool = False) -> None:
        """Write (part of) an L2 table; a new one is announced as QEMU allocates one."""
        if fresh:
            self.img.debug_event("l2_alloc_write")
        self.img.debug_event("l2_update")
        self._pwrite(data, offset)

    def _pwritev(self, offset: int, bufs: list[memoryview]) -> None:
        for i in range(0, len(bufs), IOV_MAX):
            part = bufs[i:i + IOV_MAX]
            total = sum(len(b) for b in part)
            try:
                n = self.img.store.pwritev(part, offset)
            except OSError as exc:
                raise file_error(exc, self.path, "Could not write", offset) from exc
            if n < total:   # rare short write: finish it piece by piece
                done = 0
                for b in part:
                    if done + len(b) > n:
                        skip = max(0, n - done)
                        self._pwrite(b[skip:], offset + done + skip)
                    done += len(b)
            offset += total

    def barrier(self) -> None:
        try:
            self.img.store.sync()
        except OSError as exc:
            raise file_error(exc, self.path, "Could not flush") from exc

    def _clear_autoclear(self) -> None:
        """Before the first write: flag what this writer does not keep up to date.

        Persistent bitmaps are not updated by guest writes here, so each one is
        marked in-use (inconsistent: QEMU will not trust its content, and
        ``qemu-img bitmap --remove`` drops it) while the extension itself stays
        valid, so its clusters remain accounted for. Autoclear bits this writer
        does not know are cleared, as the autoclear contract requires.
        """
        h = self.img.header
        for bitmap in self.img.bitmaps():
            if not bitmap.flags & BITMAP_IN_USE:
                self._pwrite(struct.pack(">I", bitmap.flags | BITMAP_IN_USE),
                             bitmap.flags_offset)
        known = h.autoclear_features & hdr.AUTOCLEAR_BITMAPS
        if h.version == 3 and h.autoclear_features != known:
            self._pwrite(struct.pack(">Q", known), 88)
            self.img.header = h.with_fields(autoclear_features=known)
        self.barrier()

    # -- refcounts --------------------------------------------------------------------------
    def _block(self, t: int) -> bytearray | None:
        if t >= len(self.table):
            return None
        off = self.table[t] & REFTABLE_OFFSET_MASK
        if not off:
            return None
        block = self.blocks.get(off)
        if block is None:
            if off & (self.cs - 1):
                raise CorruptImageError(f"Refcount block offset {off:#x} unaligned (table index "
                                        f"{t})", self.path,
                                        self.img.header.refcount_table_offset + 8 * t)
            self.img.debug_event("refblock_load")
            raw = self._pread(off, self.cs)
            if not raw:
                raise CorruptImageError(f"Refcount block {t} at {off:#x} lies past the end of "
                                        f"the file", self.path,
                                        self.img.header.refcount_table_offset + 8 * t)
            block = bytearray(raw.ljust(self.cs, b"\0"))
            self.blocks[off] = block
        return block

    def refcount(self, cluster: int) -> int:
        block = self._block(cluster >> self.rbe_bits)
        if block is None:
            return 0
        return get_refcount(block, cluster & (self.rbe - 1), self.rc_bits)

    def _mark(self, t: int, first: int, count: int) -> None:
        off = self.table[t] & REFTABLE_OFFSET_MASK
        lo = (first * self.rc_bits) >> 3
        hi = -(-((first + count) * self.rc_bits) // 8)
        d = self.dirty.get(off)
        if d is None:
            self.dirty[off] = [lo, hi]
        else:
            d[0], d[1] = min(d[0], lo), max(d[1], hi)

    def _set_run(self, cluster: int, count: int, value: int) -> None:
        """Set the refcount of ``count`` clusters (their blocks must exist)."""
        while count > 0:
            t = cluster >> self.rbe_bits
            i = cluster & (self.rbe - 1)
            n = min(count, self.rbe - i)
            block = self._block(t)
            if block is None:
                raise CorruptImageError(f"no refcount block for cluster {cluster}", self.path)
            fill_refcounts(block, i, n, value, self.rc_bits)
            self._mark(t, i, n)
            if not value:
                self.free_index = min(self.free_index, cluster)
            cluster += n
            count -= n

    def _change(self, cluster: int, delta: int) -> None:
        t = cluster >> self.rbe_bits
        block = self._block(t)
        i = cluster & (self.rbe - 1)
        old = get_refcount(block, i, self.rc_bits) if block is not None else 0
        new = old + delta
        if block is None or new < 0:
            raise CorruptImageError(
                f"refcount of cluster {cluster} (host offset {cluster * self.cs:#x}) would drop "
                f"below zero", self.path, cluster * self.cs)
        if new > self.rc_max:
            raise UnsupportedImageError(
                f"refcount overflow: cluster {cluster} would need a refcount of {new}; "
                f"{self.rc_bits}-bit refcounts hold at most {self.rc_max}", self.path,
                cluster * self.cs, feature="refcount width")
        set_refcount(block, i, new, self.rc_bits)
        self._mark(t, i, 1)
        if not new:
            self.free_index = min(self.free_index, cluster)

    def write_blocks(self) -> None:
        for off, (lo, hi) in sorted(self.dirty.items()):
            self.img.debug_event("refblock_update_part")
            self._pwrite(memoryview(self.blocks[off])[lo:hi], off + lo)
        self.dirty.clear()

    def write_new_entries(self) -> None:
        """Publish new refcount blocks in the table (after a barrier)."""
        if not self.new_entries:
            return
        base = self.img.header.refcount_table_offset
        for t in sorted(self.new_entries):
            self._pwrite(struct.pack(">Q", self.table[t]), base + 8 * t)
        self.new_entries.clear()

    # -- allocation -------------------------------------------------------------------------
    def alloc(self, n: int) -> int:
        """Hand out ``n`` contiguous free clusters, counted once: the first free run at
        or after :attr:`free_index`, as QEMU's allocator finds it (from the image's start
        after opening, and back to a cluster whose count drops to zero), so clusters
        given back are used again and both writers place clusters alike.

        Refcount blocks that a run past them needs are created just before it (each new
        block counts itself or is counted by an existing block); the refcount table
        grows when the run lies beyond what it can describe.
        """
        self.img.debug_event("cluster_alloc")
        while True:
            s = self._free_run(self.free_index, n)
            e = s + n
            if s < self.end:
                self._refuse_metadata(s, e)
            missing = next((t for t in range(s >> self.rbe_bits, ((e - 1) >> self.rbe_bits) + 1)
                            if t >= len(self.table) or not self.table[t]), None)
            if missing is None:
                break
            if missing >= len(self.table):
                self._grow_table(missing)
                continue
            self.img.debug_event("refblock_alloc")
            off = s * self.cs
            self.blocks[off] = bytearray(self.cs)
            self.table[missing] = off
            self.new_entries.add(missing)
            self.free_index = s + 1
            self.end = max(self.end, s + 1)
            self._set_run(s, 1, 1)
            self.dirty[off] = [0, self.cs]
        self._take(s, n)
        self.free_index = e
        return s

    def _take(self, start: int, n: int) -> None:
        """Count ``n`` free clusters from ``start`` as used, so that an undo or a failed
        write can give them back."""
        self._set_run(start, n, 1)
        self.end = max(self.end, start + n)
        if self._undo is not None:
            self._undo.allocs.append((start, n))
        self._allocated.append((start, n))
        if self.write_back:
            self._pending_bytes += n * self.cs

    def _refuse_metadata(self, first: int, stop: int) -> None:
        """A free run inside the file must not hold metadata: only damaged refcounts
        say such a cluster is free, and writing there would destroy the image (QEMU's
        overlap check refuses the write and marks the image corrupt)."""
        img, h, cs = self.img, self.img.header, self.cs
        spans = [(0, 1), (h.l1_table_offset // cs, -(-8 * h.l1_size // cs)),
                 (h.refcount_table_offset // cs, h.refcount_table_clusters)]
        spans += [((e & OFFSET_MASK) // cs, 1) for e in img.l1 if e & OFFSET_MASK]
        spans += [((t & REFTABLE_OFFSET_MASK) // cs, 1) for t in self.table if t]
        for start, count in spans:
            if start < stop and first < start + max(count, 1):
                raise CorruptImageError(
                    f"Preventing invalid allocation at offset {max(start, first) * cs:#x}: "
                    f"the cluster holds metadata but its refcount is zero", self.path)

    def _alloc_at(self, start: int, n: int) -> int:
        """Count up to ``n`` clusters from ``start`` that are free, as many as are in a row
        (QEMU's allocation at a given offset, to continue a contiguous range); returns
        how many. Clusters whose refcount block does not exist yet are not taken."""
        k = 0
        while k < n:
            c = start + k
            if not self._has_block(c) or self.refcount(c):
                break
            k += 1
        if k and start < self.end:
            self._refuse_metadata(start, start + k)
        if k:
            self._take(start, k)
            if self.free_index >= start:
                self.free_index = max(self.free_index, start + k)
        return k

    def _free_run(self, start: int, n: int) -> int:
        """The first cluster at or after ``start`` that begins ``n`` free clusters."""
        s = start
        while True:
            s = self._next_free(s)
            busy = self._next_counted(s, s + n)
            if busy is None:
                return s
            s = busy + 1

    def _next_free(self, first: int) -> int:
        """The first cluster at or after ``first`` whose refcount is zero."""
        c = first
        while True:
            t = c >> self.rbe_bits
            block = self._block(t)
            if block is None:
                return c
            i = first_free(block, c & (self.rbe - 1), self.rbe, self.rc_bits)
            if i is not None:
                return (t << self.rbe_bits) + i
            c = (t + 1) << self.rbe_bits

    def _next_counted(self, first: int, stop: int) -> int | None:
        """The first cluster in ``[first, stop)`` with a nonzero refcount, if any (a
        refcount block's span of zero entries is checked at once, not cluster by cluster:
        a 32 MiB batch would otherwise ask 512 refcounts one at a time under the lock)."""
        c = first
        width = self.rc_bits >> 3
        while c < stop:
            t = c >> self.rbe_bits
            block_end = min(stop, (t + 1) << self.rbe_bits)
            block = self._block(t)
            if block is not None:
                i, hi = c & (self.rbe - 1), block_end - (t << self.rbe_bits)
                if width and block.count(0, i * width, hi * width) == (hi - i) * width:
                    i = hi   # all zero
                while i < hi:
                    if get_refcount(block, i, self.rc_bits):
                        return (t << self.rbe_bits) + i
                    i += 1
            c = block_end
        return None

    def _has_block(self, cluster: int) -> bool:
        t = cluster >> self.rbe_bits
        return t < len(self.table) and bool(self.table[t])

    def _grow_table(self, min_index: int) -> None:
        """Write a larger refcount table at the end of the file and switch to it.

        The new table and the refcount blocks needed to count it are written and
        made durable first; then the header's two table fields (one 12-byte write
        inside the first sector) are switched; then the old table is released.
        """
        epc = self.cs // 8
        old_len = len(self.table)
        k = -(-max(min_index + 1, old_len * 2) // epc)
        m = 0
        while True:
            s = self.end
            region_end = s + k + m
            need = [t for t in range(s >> self.rbe_bits, ((region_end - 1) >> self.rbe_bits) + 1)
                    if t >= old_len or not self.table[t]]
            need_entries = max(min_index + 1, ((region_end - 1) >> self.rbe_bits) + 1)
            k2 = max(k, -(-need_entries // epc))
            if (k2, len(need)) == (k, m):
                break
            k, m = k2, len(need)
        if k * self.cs > hdr.MAX_REFTABLE_BYTES:
            raise UnsupportedImageError("Reference count table too large: the image file "
                                        "cannot grow further", self.path, 48)
        table = array("Q", self.table)
        table.extend([0] * (k * epc - old_len))
        for j, t in enumerate(need):
            off = (s + k + j) * self.cs
            self.blocks[off] = bytearray(self.cs)
            table[t] = off
            self.dirty[off] = [0, self.cs]
        self.table = table
        self.end = s + k + m
        self._set_run(s, k + m, 1)
        self.write_blocks()
        self._pwrite(to_be(table), s * self.cs)
        self.barrier()
        h = self.img.header
        self._pwrite(struct.pack(">QI", s * self.cs, k), 48)
        self.barrier()
        self.img.header = h.with_fields(refcount_table_offset=s * self.cs,
                                        refcount_table_clusters=k)
        self.new_entries.clear()
        first_old = h.refcount_table_offset // self.cs
        for c in range(first_old, first_old + h.refcount_table_clusters):
            self._change(c, -1)
        self.write_blocks()

    def _release_compressed(self, entry: int) -> None:
        img = self.img
        coff = entry & img._coffset_mask
        nsect = (entry >> img._csize_shift) & img._csize_mask
        last = coff + (nsect + 1) * 512 - (coff & 511) - 1
        for c in range(coff // self.cs, last // self.cs + 1):
            self._change(c, -1)

    # -- copy-on-write source -----------------------------------------------------------------
    def backing_fill(self, guest: int, view: memoryview) -> None:
        """What lies below this image at ``guest``: the image's backing reader (set by
        whoever holds the chain), zeros without one."""
        reader = self.img.backing_reader
        if reader is not None:
            reader(guest, view)
        else:
            view[:] = bytes(len(view))

    def _old_content(self, cl: int, entry: int) -> bytearray:
        """The current guest content of cluster ``cl`` (for a partial overwrite)."""
        img = self.img
        buf = bytearray(self.cs)
        guest = cl << self.bits
        if entry & OFLAG_COMPRESSED:
            buf[:] = img._decompress(entry, guest)
        elif entry & OFLAG_ZERO:
            pass
        elif entry & OFFSET_MASK:
            img.debug_event("cow_read")
            img._preadinto(memoryview(buf), entry & OFFSET_MASK, guest)
        else:
            if guest < img.virtual_size:
                img.debug_event("cow_read")
                n = min(self.cs, img.virtual_size - guest)
                self.backing_fill(guest, memoryview(buf)[:n])
        return buf

    # -- the request --------------------------------------------------------------------------
    def _prepare_l2(self, first_cl: int, last_cl: int) -> list[int]:
        """Make sure L2 tables exist for the range; returns the L1 slots newly given one."""
        img = self.img
        fresh = []
        for l1i in range(first_cl >> img.l2_bits, (last_cl >> img.l2_bits) + 1):
            e = img.l1[l1i]
            if not e & OFFSET_MASK:
                fresh.append(l1i)
            elif not e & OFLAG_COPIED:
                raise UnsupportedImageError(
                    f"L2 table for L1 index {l1i} is shared (internal snapshots); writing to "
                    f"it is not supported", self.path, img.header.l1_table_offset + 8 * l1i,
                    feature="internal snapshots")
        if fresh:
            start = self.alloc(len(fresh))
            for j, l1i in enumerate(fresh):
                off = (start + j) * self.cs
                img._l2_cache[off] = array("Q", bytes(self.cs))
                img.l1[l1i] = off | OFLAG_COPIED
        return fresh

    def _publish(self, fresh: list[int], tables: dict[int, array[int]],
                 touched: dict[int, list[int]], allocated: bool,
                 releases: list[tuple[int, int]]) -> None:
        """Phases A (tables part), B, C and D for a planned request."""
        img = self.img
        if self.write_back:
            self._defer(fresh, tables, touched, releases)
            return
        for l1i in fresh:    # new L2 tables are unreferenced until the L1 entry is written
            off = img.l1[l1i] & OFFSET_MASK
            self._l2_write(to_be(tables[l1i]), off, fresh=True)
        if allocated or fresh:
            self.barrier()
        if self.new_entries:
            self.write_new_entries()
            self.barrier()
        # from the first entry written on, the new clusters may be referenced on disk
        for l1i, (lo, hi) in sorted(touched.items()):
            if l1i in fresh:
                continue
            off = img.l1[l1i] & OFFSET_MASK
            self._l2_write(to_be(tables[l1i][lo:hi]), off + 8 * lo)
            self._publishing = True
        if fresh:
            lo, hi = min(fresh), max(fresh) + 1
            self.img.debug_event("l1_update")
            self._pwrite(to_be(img.l1[lo:hi]), img.header.l1_table_offset + 8 * lo)
            self._publishing = True
        if releases:
            self._apply_releases(releases)

    def _apply_releases(self, releases: list[tuple[int, int]]) -> None:
        for kind, value in releases:
            if kind == 0:
                self._release_compressed(value)
            else:
                self._change(value, -1)
        self.write_blocks()

    def resize(self, size: int) -> None:
        """A new virtual size (see :mod:`engine.formats.qcow2_resize`)."""
        qcow2_resize.resize(self, size)

    def write(self, offset: int, view: memoryview) -> None:
        if self.write_back:
            self._write_back_request(offset, len(view),
                                     lambda o, _n: self._write(o, view))
            return
        self._begin_request()
        try:
            self._write(offset, view)
        except BaseException:
            self._free_unpublished()
            self.reload()
            raise

    def write_zeroes(self, offset: int, length: int, *, unmap: bool = False) -> None:
        if self.write_back:
            self._write_back_request(offset, length,
                                     lambda o, n: self._write_zeroes(o, n, unmap))
            return
        self._begin_request()
        try:
            self._write_zeroes(offset, length, unmap)
        except BaseException:
            self._free_unpublished()
            self.reload()
            raise

    def discard(self, offset: int, length: int) -> None:
        if self.write_back:
            self._write_back_request(offset, length, self._discard)
            return
        self._begin_request()
        try:
            self._discard(offset, length)
        except BaseException:
            self._free_unpublished()
            self.reload()
            raise

    def _begin_request(self) -> None:
        self._allocated = []
        self._publishing = False

    def _free_unpublished(self) -> None:
        """A request failed before anything on disk referenced the clusters it allocated:
        count them free again, as QEMU frees what a failed allocation took (else they
        would leak). Once publishing began a cluster may be referenced, and it stays
        counted. Best effort: a failure here leaves a leak, never a corruption."""
        allocated, self._allocated = self._allocated, []
        if self._publishing or not allocated:
            return
        try:
            for start, n in allocated:
                self._set_run(start, n, 0)
            self.write_blocks()
        except (ImageError, OSError):
            log.warning("%s: clusters of a failed write stay allocated", self.path)

    def _write(self, offset: int, view: memoryview) -> None:
        img = self.img
        cs, bits = self.cs, self.bits
        end = offset + len(view)
        first_cl, last_cl = offset >> bits, (end - 1) >> bits
        l2_bits, l2mask = img.l2_bits, img.l2_entries - 1

        tables: dict[int, array[int]] = {}
        fresh: list[int] = []
        in_place, new = self._plan_write(first_cl, last_cl, tables, fresh)

        writes: list[tuple[int, memoryview]] = []   # (host offset, bytes)
        touched: dict[int, list[int]] = {}
        releases: list[tuple[int, int]] = []

        def piece(cl: int) -> tuple[int, int]:
            g = cl << bits
            return max(offset, g) - g, min(end, g + cs) - g

        def touch(cl: int) -> None:
            _touch(touched, cl >> l2_bits, cl & l2mask)

        for cl, host, was_zero in in_place:
            a, b = piece(cl)
            src = view[(cl << bits) + a - offset:(cl << bits) + b - offset]
            if was_zero and (a or b < cs):
                buf = bytearray(cs)
                buf[a:b] = src
                writes.append((host, memoryview(buf)))
            else:
                writes.append((host + a, src))
            if was_zero:
                tables[cl >> l2_bits][cl & l2mask] = host | OFLAG_COPIED
                touch(cl)
        for cl, e, host in new:
            a, b = piece(cl)
            src = view[(cl << bits) + a - offset:(cl << bits) + b - offset]
            if a or b < cs:
                buf = self._old_content(cl, e)
                buf[a:b] = src
                writes.append((host, memoryview(buf)))
            else:
                writes.append((host, src))
            tables[cl >> l2_bits][cl & l2mask] = host | OFLAG_COPIED
            touch(cl)
            if e & OFLAG_COMPRESSED:
                releases.append((0, e))
            elif e & OFFSET_MASK:
                releases.append((1, (e & OFFSET_MASK) // cs))

        # phase A: refcounts (in write-back mode: at publication), then data
        if not self.write_back:
            self.write_blocks()
        # a request that allocates is followed by a barrier: its new clusters go to the
        # disk at once anyway, so large runs of them skip the page cache
        self._write_runs(writes, bool(new) or bool(fresh))
        self._publish(fresh, tables, touched, bool(new), releases)

    def _plan_write(self, first_cl: int, last_cl: int, tables: dict[int, array[int]],
                    fresh: list[int],
                    ) -> tuple[list[tuple[int, int, bool]], list[tuple[int, int, int]]]:
        """Which guest clusters are written in place — (cluster, host, was zero-flagged)
        — and which get a new host cluster — (cluster, old entry, new host); ``tables``
        collects the L2 tables read, ``fresh`` the L1 slots given a new table.

        Clusters and L2 tables are allocated in QEMU's order, so both place them alike:
        guest clusters in order, a missing L2 table when its first cluster comes; the
        host clusters of a request continue one contiguous host range for as long as
        they can (new clusters right after the previous ones, taking what is free
        there; clusters written in place where they lie, if that is next), and a new
        range starts with the first free run large enough for the clusters that need
        allocating up to the next cluster written in place or the L2 table's end.
        """
        img = self.img
        cs, cmask = self.cs, self.cs - 1
        l2_bits, l2n = img.l2_bits, img.l2_entries
        in_place: list[tuple[int, int, bool]] = []
        new: list[tuple[int, int, int]] = []
        expected = -1       # the host cluster that continues the current range (-1: none)
        cl = first_cl
        while cl <= last_cl:
            l1i = cl >> l2_bits
            table = tables.get(l1i)
            if table is None:
                fresh.extend(self._prepare_l2(cl, cl))
                table = tables[l1i] = self._present_l2(l1i)
            e = table[cl & (l2n - 1)]
            host = e & OFFSET_MASK
            if host and (e & OFLAG_COPIED) and not e & OFLAG_COMPRESSED:
                if host & cmask:
                    raise CorruptImageError(f"Cluster allocation offset {host:#x} unaligned",
                                            self.path)
                if expected >= 0 and host >> self.bits != expected:
                    expected = -1           # a new range starts here
                    continue
                in_place.append((cl, host, bool(e & OFLAG_ZERO)))
                expected = (host >> self.bits) + 1
                cl += 1
                continue
            n = 1
            limit = min(last_cl, (l1i << l2_bits) + l2n - 1)
            while cl + n <= limit and _needs_new(table[(cl + n) & (l2n - 1)]):
                n += 1
            if expected < 0:
                start = self.alloc(n)
            else:
                n = self._alloc_at(expected, n)
                if not n:
                    expected = -1
                    continue
                start = expected
            for j in range(n):
                new.append((cl + j, table[(cl + j) & (l2n - 1)], (start + j) * cs))
            expected = start + n
            cl += n
        return in_place, new

    def _write_runs(self, writes: list[tuple[int, memoryview]], barrier: bool) -> None:
        """Write ``(host offset, bytes)`` pieces in file order, adjacent ones in one
        vectored write; ``barrier``: a barrier follows them (the request allocates)."""
        writes.sort(key=lambda w: w[0])
        run_bufs: list[memoryview] = []
        run_start, run_end = -1, -1
        for host, data in writes:
            if host != run_end:
                if run_bufs:
                    self._data_writev(run_start, run_bufs, barrier)
                run_start, run_bufs = host, []
            run_bufs.append(data)
            run_end = host + len(data)
        if run_bufs:
            self._data_writev(run_start, run_bufs, barrier)

    def _present_l2(self, l1_index: int) -> array[int]:
        """The L2 table of ``l1_index``, which :meth:`_prepare_l2` made sure exists."""
        table = self.img._l2(l1_index)
        assert table is not None, f"L2 table {l1_index} not prepared"
        return table

    def _data_writev(self, offset: int, bufs: list[memoryview], barrier: bool = False) -> None:
        if self._deferred is not None:      # written later by an InflightWrite
            self._deferred.append((offset, bufs))
            return
        if self.write_back or (barrier and sum(len(b) for b in bufs) >= DIRECT_REQUEST):
            try:
                if self._direct.writev(offset, bufs):
                    return
            except OSError as exc:
                raise file_error(exc, self.path, "Could not write", offset) from exc
        self._pwritev(offset, bufs)
        if self.write_back:     # one barrier publishes it later: let the disk start now
            self.img.store.start_writeback(offset, sum(len(b) for b in bufs))

    def _write_zeroes(self, offset: int, length: int, unmap: bool = False) -> None:
        """Zero a range as QEMU 7.2's block layer and qcow2 driver do together.

        The request is cut at cluster boundaries (the block layer aligns zero writes to
        the driver's zero alignment, one cluster here): an unaligned head up to the first
        boundary, the aligned bulk, an unaligned tail. Whole clusters get the zero flag
        (:meth:`_zeroize`); a piece that covers part of a cluster zeroes the whole
        cluster only when the rest of it already reads as zeros and the cluster holds no
        data of its own, and is written as ordinary zero data otherwise.
        """
        for pos, n in self._pieces(offset, length):
            self._zero_piece(pos, n, unmap)

    def _pieces(self, offset: int, length: int) -> list[tuple[int, int]]:
        """A request cut as QEMU's block layer cuts zero writes and discards for a driver
        aligned to clusters: the unaligned head, the aligned bulk, the unaligned tail."""
        cs = self.cs
        end = offset + length
        head, tail = offset & (cs - 1), end & (cs - 1)
        pieces = []
        pos = offset
        while pos < end:
            n = end - pos
            if head:
                n = min(n, cs - head)
                head = (head + n) & (cs - 1)
            elif tail and n > cs:
                n -= tail
            pieces.append((pos, n))
            pos += n
        return pieces

    def _discard(self, offset: int, length: int) -> None:
        """QEMU's qcow2 discard: pieces that are not whole clusters are ignored (but a
        last short cluster discarded up to the image's end); whole clusters are given
        back and read as zeros (version 3: the zero flag where something was allocated
        or a backing file lies below; version 2: unallocated, and nothing at all with a
        backing file, whose data would show through)."""
        img = self.img
        if img.version == 2 and img.backing_reader is not None:
            return
        image_end = -(-img.virtual_size // 512) * 512
        for pos, n in self._pieces(offset, length):
            if (pos | n) & (self.cs - 1) and (pos & (self.cs - 1) or pos + n != image_end):
                continue
            if img.version == 2:
                self._set_entries(pos, pos + n, _unallocated)
            elif img.backing_reader is not None:
                self._set_entries(pos, pos + n, _zero_unmapped)
            else:
                self._set_entries(pos, pos + n, _discarded)

    def _zero_piece(self, offset: int, length: int, unmap: bool) -> None:
        """One piece of a zero write: whole clusters, or part of a single cluster."""
        cs = self.cs
        end = offset + length
        if self.img.version == 2 and self.img.backing_reader is not None:
            self._write_zero_data(offset, end)     # no zero flag, and no discard either
            return
        head = offset & (cs - 1)
        # the image's end counts as aligned (QEMU measures it in whole sectors)
        tail = 0 if end == -(-self.img.virtual_size // 512) * 512 else -end & (cs - 1)
        if head or tail:
            start = offset - head
            if not (self._reads_zero(start, head) and self._reads_zero(end, tail)
                    and self._holds_no_data(start >> self.bits)):
                self._write(offset, memoryview(bytes(length)))
                return
            offset, end = start, start + cs
        self._zeroize(offset, end, unmap)

    def _reads_zero(self, offset: int, length: int) -> bool:
        """Whether ``[offset, offset+length)`` reads as zeros by allocation alone (zero
        clusters here, or unallocated here and zeros below), as QEMU's block status of
        the whole chain says; data clusters count as data whatever they hold."""
        img = self.img
        length = min(length, img.virtual_size - offset)
        if length <= 0:
            return True
        for start, n, kind, _, _ in img.runs(offset, length):
            if kind == K_ZERO:
                continue
            if kind != K_UNALLOC:
                return False
            if img.backing_reader is None:
                continue
            below = img.backing_zero
            if below is None or not below(start, n):
                return False
        return True

    def _holds_no_data(self, cluster: int) -> bool:
        """Whether guest cluster ``cluster`` is unallocated or zero-flagged here."""
        img = self.img
        table = img._l2(cluster >> img.l2_bits)
        if table is None:
            return True
        e = table[cluster & (img.l2_entries - 1)]
        return not e & OFLAG_COMPRESSED and (bool(e & OFLAG_ZERO) or not e & OFFSET_MASK)

    def _zeroize(self, offset: int, end: int, unmap: bool) -> None:
        """Whole clusters ``[offset, end)`` (the last may run past the image's end) read
        as zeros: the zero flag in version 3 (``unmap``: allocated clusters are given
        back; compressed ones always are); version 2 has no zero flag: the clusters are
        discarded (only reached without a backing file; with one, zeros are written)."""
        if self.img.version == 2:
            self._set_entries(offset, end, _unallocated)
        elif unmap:
            self._set_entries(offset, end, _zero_unmapped)
        else:
            self._set_entries(offset, end, _zero_kept)

    def _set_entries(self, offset: int, end: int, rule: Callable[[int], int]) -> None:
        """Give the L2 entries of clusters ``[offset, end)`` the entry ``rule`` makes of
        each (tables are created where missing, as QEMU does); host clusters an entry
        no longer references are given back after the new entries are on disk."""
        img = self.img
        cs, bits = self.cs, self.bits
        first_cl, last_cl = offset >> bits, (end - 1) >> bits
        fresh = self._prepare_l2(first_cl, last_cl)
        l2_bits, l2mask = img.l2_bits, img.l2_entries - 1
        touched: dict[int, list[int]] = {}
        releases: list[tuple[int, int]] = []
        tables: dict[int, array[int]] = {}
        for l1i in range(first_cl >> l2_bits, (last_cl >> l2_bits) + 1):
            table = tables[l1i] = self._present_l2(l1i)
            lo = max(first_cl, l1i << l2_bits) & l2mask
            hi = (min(last_cl, ((l1i + 1) << l2_bits) - 1) & l2mask) + 1
            for i in range(lo, hi):
                e = table[i]
                new = rule(e)
                if new == e:
                    continue
                if e & OFLAG_COMPRESSED:
                    releases.append((0, e))
                elif e & OFFSET_MASK and not new & OFFSET_MASK:
                    releases.append((1, (e & OFFSET_MASK) // cs))
                table[i] = new
                _touch(touched, l1i, i)
        if not self.write_back:
            self.write_blocks()
        self._publish(fresh, tables, touched, False, releases)

    def _write_zero_data(self, start: int, stop: int) -> None:
        """Zeros written as data over ``[start, stop)``, in bounded pieces."""
        chunk = 4 << 20
        pos = start
        while pos < stop:
            k = min(chunk, stop - pos)
            self._write(pos, memoryview(bytes(k)))
            pos += k

    # -- compressed clusters --------------------------------------------------------------------
    def write_compressed(self, offset: int, view: memoryview) -> None:
        """Write one cluster compressed (the image's last cluster may be short: it is
        padded with zeros); data that does not shrink below a cluster is written as a
        normal cluster, as QEMU does. Held metadata is published first."""
        img = self.img
        table = img._l2(offset >> self.bits >> img.l2_bits)
        if table is not None and table[(offset >> self.bits) & (img.l2_entries - 1)] \
                & OFFSET_MASK:      # refused before anything changed
            raise OSError(errno.EIO, "compressed writes cannot overwrite an allocated cluster")
        if self.write_back:
            self.publish()
        held, self.write_back = self.write_back, False
        try:
            self._write_compressed(offset, view)
        except BaseException:
            self.reload()
            raise
        finally:
            self.write_back = held

    def _write_compressed(self, offset: int, view: memoryview) -> None:
        img = self.img
        cs = self.cs
        if img.header.compression_type != 0:
            raise UnsupportedImageError("compressed writes with zstd are not supported",
                                        self.path, feature="zstd compression")
        if offset & (cs - 1) or not (len(view) == cs or (
                0 < len(view) < cs and offset + len(view) == img.virtual_size)):
            raise OSError(errno.EINVAL, "compressed writes must cover one whole cluster")
        squeeze = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -12, 9)
        packed = squeeze.compress(bytes(view).ljust(cs, b"\0")) + squeeze.flush()
        if len(packed) > cs - 1:
            self._write(offset, view)
            return
        cl = offset >> self.bits
        l1i, i = cl >> img.l2_bits, cl & (img.l2_entries - 1)
        fresh = self._prepare_l2(cl, cl)
        table = img._l2(l1i)
        assert table is not None
        if table[i] & OFFSET_MASK:
            raise OSError(errno.EIO, "compressed writes cannot overwrite an allocated cluster")
        host = self._alloc_bytes(len(packed))
        sectors = (host + len(packed) - 1) // 512 - host // 512
        table[i] = host | OFLAG_COMPRESSED | (sectors << img._csize_shift)
        self.write_blocks()
        self._pwrite(packed, host)
        self._publish(fresh, {l1i: table}, {l1i: [i, i + 1]}, True, [])

    def _alloc_bytes(self, size: int) -> int:
        """``size`` bytes for a compressed run: after the previous run when they fit in
        its host cluster (or run on into the next cluster when that one is the next
        allocated), else at the start of a new cluster. Every cluster touched counts the
        run once."""
        cs = self.cs
        start = self._free_byte
        if start and self.refcount(start // cs) >= self.rc_max:
            start = 0
        if start and cs - (start & (cs - 1)) >= size:
            self._change(start // cs, 1)
        else:
            new = self.alloc(1) * cs
            if start and -(-start // cs) * cs == new:
                self._change(start // cs, 1)       # the run spans the old and the new cluster
            else:
                start = new
        end = start + size
        self._free_byte = end if end & (cs - 1) else 0
        return start

def _needs_new(entry: int) -> bool:
    """Whether a write to a cluster with this L2 entry needs a new host cluster."""
    return not (entry & OFFSET_MASK and entry & OFLAG_COPIED) or bool(entry & OFLAG_COMPRESSED)


def _unallocated(entry: int) -> int:
    """Version 2 has no zero flag: a cluster zeroed or discarded is unallocated."""
    return 0


def _zero_unmapped(entry: int) -> int:
    """A zero cluster whose host cluster (if any) is given back."""
    return OFLAG_ZERO


def _discarded(entry: int) -> int:
    """A discarded cluster without a backing file: what was allocated becomes a zero
    cluster; what was not stays as it is."""
    return OFLAG_ZERO if entry & OFFSET_MASK or entry & OFLAG_COMPRESSED else entry


def _zero_kept(entry: int) -> int:
    """A zero cluster keeping its host cluster (a compressed one is given back)."""
    return OFLAG_ZERO if entry & OFLAG_COMPRESSED else entry | OFLAG_ZERO


def _touch(touched: dict[int, list[int]], l1_index: int, index: int) -> None:
    """Widen the range of L2 entries of ``l1_index`` changed by a write to ``index``."""
    span = touched.get(l1_index)
    if span is None:
        touched[l1_index] = [index, index + 1]
    else:
        span[0], span[1] = min(span[0], index), max(span[1], index + 1)

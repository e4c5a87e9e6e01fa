"""qcow2 images: guest reads through the L1/L2 tables, writes with refcounting.

Layout facts and rules are those of the format description (see the project's
qcow2 notes). The hot paths avoid per-byte Python work: L1 and L2 tables are
kept as ``array('Q')`` in host byte order, a request is walked one *L2 entry*
at a time (not one byte), and runs of guest clusters that map to consecutive
host clusters are read or written with a single ``preadv``/``pwrite``.

Writes keep the crash-safety invariant of the format: on disk, a cluster's
refcount is never lower than the number of references to it. So new clusters
are counted (refcount blocks written) and filled (guest data, copy-on-write
data, new L2 tables) *before* a barrier (``fdatasync``), and only then are the
L2/L1 entries that publish them written. A crash at any point leaves at worst
leaked clusters, never a reference to an uncounted or unwritten cluster.

Slightly over 500 lines: :class:`Qcow2Image` is the reading side of one format (tables,
caches, the request walk, compressed clusters, ``info``), and every one of its parts
reads the same cached L1/L2 state; the writing side is :mod:`engine.formats.qcow2_write`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import zlib
from array import array
from typing import Any

from engine.formats import qcow2_header as hdr
from engine.formats.backing_names import full_backing_filename
from engine.formats.errors import (
    CorruptImageError,
    ImageError,
    ImageReadOnlyError,
)
from engine.formats.image import (
    DATA,
    UNALLOCATED,
    ZERO,
    BackingReader,
    Extent,
    Image,
    file_error,
    locked,
    locked_metadata,
    zero_fill,
)
from engine.formats.qcow2_backing import rewrite_backing
from engine.formats.qcow2_directories import (
    Bitmap,
    Snapshot,
    bitmap_directory_location,
    parse_bitmap_directory,
    parse_snapshots,
)
from engine.formats.qcow2_header import Qcow2Header, parse_header
from engine.formats.qcow2_layout import (
    K_COMPRESSED,
    K_DATA,
    K_UNALLOC,
    K_ZERO,
    OFFSET_MASK,
    OFLAG_COMPRESSED,
    OFLAG_ZERO,
    be_array,
)
from engine.formats.qcow2_write import InflightWrite, Qcow2Writer
from engine.formats.store import ByteStore

_STATE = {K_UNALLOC: UNALLOCATED, K_ZERO: ZERO, K_DATA: DATA, K_COMPRESSED: DATA}

log = logging.getLogger(__name__)

#: L2 tables kept in memory per image (written through, so eviction is free, except
#: for tables pinned with unpublished updates in write-back mode)
L2_CACHE_BYTES = 64 << 20

#: what opening an image reads first: enough for the header, its extensions and the
#: backing file name of any image qemu-img or the engine writes
_FIRST_READ = 4096


class Qcow2Image(Image):
    """A qcow2 file (version 2 or 3) opened for reading, or reading and writing."""

    format = "qcow2"
    #: always known for qcow2 (read from the header); optional only for other formats
    cluster_size: int

    def __init__(self, store: ByteStore, writable: bool, *, owns_store: bool = True) -> None:
        super().__init__(store, writable, owns_store=owns_store)
        path = self.path
        self._file_size = self.file_size()
        self.header: Qcow2Header = self._read_header()
        h = self.header
        if writable and h.corrupt:
            raise ImageReadOnlyError("qcow2: Image is corrupt; cannot be opened read/write",
                                     path, 72)
        self.version = h.version
        self.cluster_bits = h.cluster_bits
        self.cluster_size = h.cluster_size
        self.l2_bits = h.cluster_bits - 3
        self.l2_entries = 1 << self.l2_bits
        self.virtual_size = h.size
        self.backing_file = h.backing_file
        self.backing_format = h.backing_format
        self._csize_shift = 62 - (h.cluster_bits - 8)
        self._coffset_mask = (1 << self._csize_shift) - 1
        self._csize_mask = (1 << (h.cluster_bits - 8)) - 1
        self.l1 = self._load_l1()
        self._l2_cache: dict[int, array[int]] = {}
        self._l2_cache_max = max(16, L2_CACHE_BYTES // h.cluster_size)
        #: tables with updates not yet on disk (write-back mode): never evicted
        self._l2_pinned: set[int] = set()
        self._compressed_cache: tuple[int, bytes] | None = None
        self._writer: Qcow2Writer | None = None   # created on the first write
        self._write_back = False

    def _read_header(self) -> Qcow2Header:
        """Parse the header from the first 4 KiB when all it names lies there (the usual
        case), else from the whole first cluster.

        Every open reads this; along a chain of hundreds of images, reading the whole
        64 KiB cluster each time (fresh pages to fault in) was most of the cost. A parse
        that fails on the prefix is done again on the whole cluster, so errors are
        judged exactly as before; one that succeeds looked only at bytes in the prefix.
        """
        size = self._file_size
        head = self._pread(0, min(size, _FIRST_READ))
        bits = int.from_bytes(head[20:24], "big") if len(head) >= 24 else 0
        if not hdr.MIN_CLUSTER_BITS <= bits <= hdr.MAX_CLUSTER_BITS:
            return parse_header(head, self.path, size)    # it names what is wrong
        cluster = min(size, 1 << bits)
        if cluster <= len(head):
            return parse_header(head[:cluster], self.path, size)
        with contextlib.suppress(ImageError):
            return parse_header(head, self.path, size)
        return parse_header(self._pread(0, cluster), self.path, size)

    # -- low-level file access ------------------------------------------------------------
    def _pread(self, offset: int, length: int) -> bytes:
        try:
            return self.store.pread(length, offset)
        except OSError as exc:
            raise file_error(exc, self.path, "Could not read", offset) from exc

    def _preadinto(self, view: memoryview, offset: int, guest: int) -> None:
        """Fill ``view`` from host ``offset``; a short read at EOF is zero (QEMU does so)."""
        done = 0
        total = len(view)
        while done < total:
            try:
                n = self.store.preadv([view[done:]], offset + done)
            except OSError as exc:
                raise file_error(exc, self.path, "Could not read", offset + done) from exc
            if n == 0:
                if done == 0 and offset >= self.file_size():
                    raise CorruptImageError(
                        f"Data cluster for guest offset {guest:#x} lies past the end of the "
                        f"file (host offset {offset:#x})", self.path, offset)
                zero_fill(view[done:])
                return
            done += n

    def _load_l1(self) -> array[int]:
        h = self.header
        raw = self._pread(h.l1_table_offset, h.l1_size * 8) if h.l1_size else b""
        raw = raw.ljust(h.l1_size * 8, b"\0")
        return be_array(raw)

    def _l2(self, l1_index: int) -> array[int] | None:
        """The L2 table for one L1 slot (None when unallocated), cached."""
        entry = self.l1[l1_index]
        l2_off = entry & OFFSET_MASK
        if not l2_off:
            return None
        table = self._l2_cache.get(l2_off)
        if table is not None:
            return table
        where = self.header.l1_table_offset + 8 * l1_index
        if l2_off & (self.cluster_size - 1):
            raise CorruptImageError(
                f"L2 table offset {l2_off:#x} unaligned (L1 index {l1_index:#x})",
                self.path, where)
        if l2_off >= self._file_size and l2_off >= self.file_size():
            raise CorruptImageError(
                f"L2 table offset {l2_off:#x} (L1 index {l1_index:#x}) lies past the end of the "
                f"file", self.path, where)
        self.debug_event("l2_load")
        raw = self._pread(l2_off, self.cluster_size).ljust(self.cluster_size, b"\0")
        table = be_array(raw)
        if len(self._l2_cache) >= self._l2_cache_max:
            victim = next((k for k in self._l2_cache if k not in self._l2_pinned), None)
            if victim is not None:
                self._l2_cache.pop(victim)
        self._l2_cache[l2_off] = table
        return table

    # -- mapping ----------------------------------------------------------------------------
    def runs(self, offset: int, length: int) -> list[tuple[int, int, int, int, int]]:
        """Map a guest range to runs ``(guest_start, length, kind, host, l2_entry)``.

        Adjacent clusters of one kind merge into one run; data runs merge only
        when their host clusters are consecutive (so one run = one syscall).
        ``host`` is the host offset of ``guest_start`` (0 when there is none);
        ``l2_entry`` is kept for compressed clusters (one run per cluster).
        """
        # Over 60 lines: the per-cluster walk of every read is kept in one loop on purpose; a call
        # per cluster costs more than the walk itself.
        out: list[tuple[int, int, int, int, int]] = []
        if length <= 0:
            return out
        bits = self.cluster_bits
        cmask = self.cluster_size - 1
        l2n = self.l2_entries
        end = offset + length
        last_cl = (end - 1) >> bits
        cl = offset >> bits
        # the pending run
        r_start = offset
        r_kind = -1
        r_host_next = 0    # host offset the next cluster must have to extend a data run
        r_host = 0
        r_entry = 0
        append = out.append
        while cl <= last_cl:
            l1i = cl >> self.l2_bits
            if l1i >= len(self.l1):
                raise CorruptImageError(
                    f"guest offset {cl << bits:#x} is not covered by the L1 table", self.path,
                    self.header.l1_table_offset)
            first_i = cl & (l2n - 1)
            n = min(l2n - first_i, last_cl - cl + 1)
            table = self._l2(l1i)
            if table is None:
                if r_kind != K_UNALLOC:
                    if r_kind >= 0:
                        g = cl << bits
                        append((r_start, g - r_start, r_kind, r_host, r_entry))
                        r_start = g
                    r_kind, r_host, r_entry = K_UNALLOC, 0, 0
                cl += n
                continue
            for i in range(first_i, first_i + n):
                e = table[i]
                if e & OFLAG_COMPRESSED:
                    kind, host = K_COMPRESSED, 0
                else:
                    host = e & OFFSET_MASK
                    if e & OFLAG_ZERO:
                        kind = K_ZERO
                    elif host:
                        kind = K_DATA
                        if host & cmask:
                            raise CorruptImageError(
                                f"Cluster allocation offset {host:#x} unaligned (L2 offset "
                                f"{self.l1[l1i] & OFFSET_MASK:#x}, L2 index {i:#x})",
                                self.path, (self.l1[l1i] & OFFSET_MASK) + 8 * i)
                    else:
                        kind = K_UNALLOC
                if kind == r_kind and kind != K_COMPRESSED and (
                        kind == K_UNALLOC or host == r_host_next):
                    if host:
                        r_host_next += self.cluster_size
                    cl += 1
                    continue
                g = cl << bits
                if r_kind >= 0:
                    append((r_start, g - r_start, r_kind, r_host, r_entry))
                    r_start = g
                r_kind, r_entry = kind, e
                r_host = host + (r_start & cmask) if host else 0
                r_host_next = host + self.cluster_size if host else 0
                cl += 1
        append((r_start, end - r_start, r_kind, r_host, r_entry))
        return out

    @locked_metadata
    def block_status(self, offset: int, length: int) -> list[Extent]:
        self.check_request(offset, length)
        out: list[Extent] = []
        for start, n, kind, host, _ in self.runs(offset, length):
            state = _STATE[kind]
            off = host or None
            comp = kind == K_COMPRESSED
            if out:
                prev = out[-1]
                if (prev.state == state and prev.compressed == comp
                        and (prev.offset is None) == (off is None)
                        and (off is None
                             or (prev.offset is not None and prev.offset + prev.length == off))):
                    out[-1] = Extent(prev.start, prev.length + n, state, prev.offset, comp)
                    continue
            out.append(Extent(start, n, state, off, comp))
        return out

    # -- reading ----------------------------------------------------------------------------
    @locked_metadata
    def readinto(self, offset: int, view: memoryview, backing: BackingReader | None = None,
                 *, prezeroed: bool = False) -> None:
        # a data write in flight only fills its own guest range (a stream job reads
        # the next range through this image while its last batch is written)
        if self.inflight is not None and self.inflight.overlaps(offset, len(view)):
            self.settle_inflight()
        self.check_request(offset, len(view))
        for start, n, kind, host, entry in self.runs(offset, len(view)):
            v = view[start - offset:start - offset + n]
            if kind == K_DATA:
                self._preadinto(v, host, start)
            elif kind == K_UNALLOC:
                if backing is not None:
                    self.debug_event("read_backing_aio")
                    backing(start, v)
                elif not prezeroed:
                    zero_fill(v)
            elif kind == K_ZERO:
                if not prezeroed:
                    zero_fill(v)
            else:
                self.debug_event("read_compressed")
                data = self._decompress(entry, start)
                i = start & (self.cluster_size - 1)
                v[:] = data[i:i + n]

    def _decompress(self, entry: int, guest: int) -> bytes:
        cached = self._compressed_cache
        if cached is not None and cached[0] == entry:
            return cached[1]
        coff = entry & self._coffset_mask
        nsect = (entry >> self._csize_shift) & self._csize_mask
        csize = (nsect + 1) * 512 - (coff & 511)
        if coff >= self.file_size():
            raise CorruptImageError(
                f"Compressed cluster for guest offset {guest:#x} lies past the end of the file "
                f"(host offset {coff:#x})", self.path, coff)
        raw = self._pread(coff, csize)
        try:
            out = zlib.decompressobj(-15).decompress(raw, self.cluster_size)
        except zlib.error as exc:
            raise CorruptImageError(
                f"Could not decompress the cluster at guest offset {guest:#x}: {exc}",
                self.path, coff) from exc
        if len(out) != self.cluster_size:
            raise CorruptImageError(
                f"Compressed cluster at guest offset {guest:#x} decompresses to {len(out)} "
                f"bytes, not {self.cluster_size}", self.path, coff)
        self._compressed_cache = (entry, out)
        return out

    # -- description ------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self.header.dirty

    @property
    def corrupt(self) -> bool:
        return self.header.corrupt

    @property
    def incompatible_features(self) -> list[str]:
        bits = self.header.incompatible_features
        return [hdr.INCOMPAT_NAMES.get(b, f"bit {b}") for b in range(64) if bits & (1 << b)]

    @property
    def snapshot_count(self) -> int:
        return self.header.nb_snapshots

    def snapshots(self) -> list[Snapshot]:
        h = self.header
        if not h.nb_snapshots:
            return []
        # entries are variable-sized; read generously but never past EOF
        want = min(self.file_size() - h.snapshots_offset, h.nb_snapshots * 1024 + 65536)
        table = self._pread(h.snapshots_offset, max(0, want))
        return parse_snapshots(table, h.nb_snapshots, h.snapshots_offset, self.path)

    def bitmaps(self) -> list[Bitmap]:
        """Persistent dirty bitmaps (only when the extension is marked consistent)."""
        h = self.header
        ext = h.extension(hdr.EXT_BITMAPS)
        if ext is None or not h.autoclear_features & hdr.AUTOCLEAR_BITMAPS:
            return []
        count, size, offset = bitmap_directory_location(ext, self.path)
        if not count:
            return []
        if size > 64 << 20 or offset % self.cluster_size or offset + size > self.file_size():
            raise CorruptImageError(f"Bitmap directory at {offset:#x} ({size} bytes) is invalid",
                                    self.path, ext.offset)
        return parse_bitmap_directory(self._pread(offset, size), count, offset, self.path)

    def format_specific(self) -> dict[str, Any]:
        h = self.header
        data: dict[str, Any] = {
            "compat": "1.1" if h.version == 3 else "0.10",
            "compression-type": "zstd" if h.compression_type == 1 else "zlib",
        }
        if h.version == 3:
            data["lazy-refcounts"] = h.lazy_refcounts
        bitmaps = self.bitmaps()
        if bitmaps:
            data["bitmaps"] = [b.info() for b in bitmaps]
        data["refcount-bits"] = h.refcount_bits
        if h.version == 3:
            data["corrupt"] = h.corrupt
            data["extended-l2"] = bool(h.incompatible_features & hdr.INCOMPAT_EXTL2)
        return {"type": "qcow2", "data": data}

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.backing_file is not None and self.backing_format is not None:
            out["backing-filename-format"] = self.backing_format
        snaps = self.snapshots()
        if snaps:
            out["snapshots"] = [s.info() for s in snaps]
        out.update({
            "virtual-size": self.virtual_size,
            "filename": self.path,
            "cluster-size": self.cluster_size,
            "format": "qcow2",
            "actual-size": self.actual_size(),
            "format-specific": self.format_specific(),
        })
        if self.backing_file is not None:
            out["full-backing-filename"] = full_backing_filename(self.path, self.backing_file)
            out["backing-filename"] = self.backing_file
        out["dirty-flag"] = self.header.dirty
        return out

    # -- writing ----------------------------------------------------------------------------
    def _get_writer(self) -> Qcow2Writer:
        self.check_writable()
        if self._writer is None:
            self._writer = Qcow2Writer(self)
            if self._write_back:
                self._writer.begin_write_back()
        return self._writer

    @locked
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.check_request(offset, len(view))
        if len(view):
            self._get_writer().write(offset, view)

    @locked
    def write_begin(self, offset: int, data: bytes | bytearray | memoryview,
                    ) -> InflightWrite | None:
        """Begin a write whose data another thread writes (:meth:`InflightWrite.run`);
        None when it was written at once (see :meth:`Qcow2Writer.write_begin`)."""
        view = memoryview(data).cast("B")
        self.check_request(offset, len(view))
        if not len(view):
            return None
        inflight = self._get_writer().write_begin(offset, view)
        self.inflight = inflight
        return inflight

    def settle_inflight(self) -> None:
        inflight, self.inflight = self.inflight, None
        if inflight is not None:
            inflight.writer.settle(inflight)

    @locked
    def write_zeroes(self, offset: int, length: int, *, unmap: bool = False) -> None:
        """Make the range read as zeros; with ``unmap``, whole clusters give their host
        clusters back (QEMU's BDRV_REQ_MAY_UNMAP), else they keep them."""
        self.check_request(offset, length)
        if length:
            self._get_writer().write_zeroes(offset, length, unmap=unmap)

    @locked
    def discard(self, offset: int, length: int) -> None:
        """Give clusters back (QEMU's discard request: whole clusters only; they read as
        zeros afterwards, or fall through to nothing in version 2)."""
        self.check_request(offset, length)
        if length:
            self._get_writer().discard(offset, length)

    @locked
    def write_compressed(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write whole clusters compressed, one by one (QEMU's rules: the request starts
        on a cluster and ends on one or at the end of the image)."""
        view = memoryview(data).cast("B")
        self.check_request(offset, len(view))
        cs = self.cluster_size
        if offset % cs or (len(view) % cs and offset + len(view) != self.virtual_size):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        writer = self._get_writer()
        for pos in range(0, len(view), cs):
            writer.write_compressed(offset + pos, view[pos:pos + cs])

    @locked
    def set_backing(self, backing_file: str | None, backing_format: str | None) -> None:
        self.check_writable()
        if self._writer is not None and self._writer.has_pending:
            self.flush()    # a new backing must never stand above unpublished data
        rewrite_backing(self, backing_file, backing_format)

    @locked
    def begin_write_back(self) -> None:
        """Defer metadata updates until the next flush (see :mod:`engine.formats.qcow2_write`).

        For jobs that copy many batches: one barrier for all of them instead of one
        each. Reads in this process see every write at once; other processes see
        the data once it is flushed, as with QEMU's metadata cache.
        """
        self._write_back = True
        if self._writer is not None:
            self._writer.begin_write_back()

    @locked
    def end_write_back(self) -> None:
        """Publish what is pending and return to publishing each write at once.

        Never raises: when publishing fails, the unpublished writes are dropped (the
        image stays valid and shows what it showed before them) and a warning is logged.
        """
        self._write_back = False
        if self._writer is None or not self._writer.write_back:
            return
        try:
            self._writer.end_write_back()
        except ImageError as exc:
            log.warning("%s: writes not published, dropped: %s", self.path, exc)
            self._writer.reload()

    @locked
    def flush(self) -> None:
        writer = self._writer
        if writer is not None and not self.closed:
            writer.publish()
            if writer.lost is not None:
                raise writer.lost
        super().flush()

    @locked
    def close(self) -> None:
        if self._writer is not None and not self.closed:
            self.end_write_back()
            self._writer.close()
        super().close()

    # -- reopening ---------------------------------------------------------------------------
    @locked
    def rebind(self, store: ByteStore) -> None:
        """Another ``file`` child: as QEMU's reopen, the header, L1 table and refcount
        table stay as read; L2 tables and refcount blocks are read again from the new
        store when next needed."""
        if store is self.store:
            return
        super().rebind(store)
        self._l2_cache.clear()
        self._l2_pinned.clear()
        self._compressed_cache = None
        self._file_size = self.file_size()
        if self._writer is not None:
            self._writer.forget_blocks()

    @locked
    def set_writable(self, writable: bool) -> None:
        if writable == self.writable:
            return
        if writable and self.header.corrupt:
            raise ImageReadOnlyError("qcow2: Image is corrupt; cannot be opened read/write",
                                     self.path, 72)
        if not writable and self._writer is not None:
            self.end_write_back()
            self.flush()
            self._writer.close()
            self._writer = None
        super().set_writable(writable)

    @locked
    def resize(self, size: int) -> None:
        """Grow or shrink the virtual size (clusters past a new end are released)."""
        self._get_writer().resize(size)

    def unsupported_for_writing(self) -> str | None:
        """Why this image must not be written, or None."""
        h = self.header
        if h.nb_snapshots:
            return "writing to images with internal snapshots is not supported"
        return None

"""Creating empty images, laid out the way qemu-img 7.2 lays them out.

A fresh qcow2 file holds: cluster 0 (header, backing-format extension,
feature-name table, end marker, backing name), then the refcount table, the
refcount block(s) and the L1 table. Every one of those clusters is counted once,
so ``qemu-img check`` finds the new image clean.
"""

from __future__ import annotations

import os
from array import array

from engine.formats import qcow2_header as hdr
from engine.formats.backing_names import full_backing_filename
from engine.formats.errors import ImageError, RequestError, UnsupportedImageError
from engine.formats.hostfile import create_host_file
from engine.formats.image import file_error
from engine.formats.probe import open_image
from engine.formats.qcow2_layout import OFLAG_COPIED, to_be
from engine.formats.qcow2_refcount import fill_refcounts
from engine.formats.store import ByteStore

MAX_VIRTUAL_SIZE = (1 << 63) - 512


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_size(path: str, size: int) -> int:
    if not isinstance(size, int) or size < 0:
        raise RequestError(f"Invalid image size {size!r}", path)
    if size > MAX_VIRTUAL_SIZE:
        raise RequestError(f"Image size {size} is too large", path)
    return _ceil_div(size, 512) * 512   # qemu-img rounds up to whole sectors


def create_raw(path: str | os.PathLike[str], size: int) -> None:
    """A sparse raw file of ``size`` bytes (existing files are truncated)."""
    path = os.fspath(path)
    size = _check_size(path, size)
    try:
        with create_host_file(path) as store:
            store.truncate(0)
            store.truncate(size)
    except OSError as exc:
        raise file_error(exc, path, f"Could not create '{path}'") from exc


def _probe_backing_format(path: str, backing_file: str) -> str:
    full = full_backing_filename(path, backing_file)
    try:
        with open_image(full) as img:
            return img.format
    except ImageError as exc:
        raise ImageError(
            f"Backing file specified without backing format, and '{full}' could not be "
            f"probed: {exc}", path) from exc


def create_qcow2(path: str | os.PathLike[str], size: int, *, backing_file: str | None = None,
                 backing_format: str | None = None, cluster_size: int = 65536,
                 version: int = 3, refcount_bits: int = 16,
                 lazy_refcounts: bool = False) -> None:
    """Create an empty qcow2 image (an existing file is overwritten).

    Without ``backing_format`` the backing file is probed, so the header always
    carries the backing-format extension (QEMU otherwise probes at every open).
    ``lazy_refcounts`` only sets the compatible feature bit for QEMU's benefit: this
    engine always updates refcounts at once.
    """
    path = os.fspath(path)
    if backing_format is not None and backing_format not in ("qcow2", "raw"):
        raise UnsupportedImageError(f"Unknown backing format '{backing_format}'", path,
                                    feature=f"format {backing_format}")
    try:
        store = create_host_file(path)
    except OSError as exc:
        raise file_error(exc, path, f"Could not create '{path}'") from exc
    with store:
        format_qcow2(store, size, backing_file=backing_file, backing_format=backing_format,
                     cluster_size=cluster_size, version=version, refcount_bits=refcount_bits,
                     lazy_refcounts=lazy_refcounts)


def format_qcow2(store: ByteStore, size: int, *, backing_file: str | None = None,
                 backing_format: str | None = None, cluster_size: int = 65536,
                 version: int = 3, refcount_bits: int = 16, lazy_refcounts: bool = False,
                 extended_l2: bool = False, probe_backing: bool = True,
                 preallocation: str = "off") -> int:
    """Write an empty qcow2 image into ``store`` (whatever it held is replaced); returns
    where its metadata ends.

    ``extended_l2`` sets the header bit of images with subclusters (a new image has no
    L2 table yet, so nothing else differs). ``probe_backing`` False: a backing file
    without a format is written without one (as QEMU's blockdev-create does).
    ``preallocation`` (``metadata``, ``falloc``, ``full``) gives every guest cluster a
    host cluster at once, as QEMU does: L2 tables after the L1 table, the data after
    them, the file grown over it (sparse, allocated, or written with zeros).
    """
    # Over 60 lines: its docstring names every option, and the body writes the header, tables and
    # preallocated clusters in the order the file is laid out.
    path = store.name
    size = _check_size(path, size)
    _check_qcow2_options(path, cluster_size, version, refcount_bits, lazy_refcounts,
                         extended_l2)
    if backing_file and backing_format is None and probe_backing:
        backing_format = _probe_backing_format(path, backing_file)
    if not backing_file:
        backing_file, backing_format = None, None

    bits = cluster_size.bit_length() - 1
    l2_entries = cluster_size // (16 if extended_l2 else 8)
    l1_size = _ceil_div(size, cluster_size * l2_entries)
    if l1_size * 8 > hdr.MAX_L1_BYTES:
        raise RequestError(f"Image size {size} is too large for {cluster_size}-byte clusters",
                           path)
    l1_clusters = _ceil_div(l1_size * 8, cluster_size)
    rb_entries = cluster_size * 8 // refcount_bits
    data_clusters = _ceil_div(size, cluster_size) if preallocation != "off" else 0
    extra = (l1_size + data_clusters) if preallocation != "off" else 0
    rt_clusters, rb_count = _refcount_sizes(1 + l1_clusters + extra, rb_entries, cluster_size)
    rt_off = cluster_size
    rb_off = rt_off + rt_clusters * cluster_size
    l1_off = rb_off + rb_count * cluster_size

    header = hdr.Qcow2Header(
        version=version, backing_file_offset=0, backing_file_size=0, cluster_bits=bits,
        size=size, crypt_method=0, l1_size=l1_size, l1_table_offset=l1_off,
        refcount_table_offset=rt_off, refcount_table_clusters=rt_clusters, nb_snapshots=0,
        snapshots_offset=0, refcount_order=refcount_bits.bit_length() - 1,
        compatible_features=hdr.COMPAT_LAZY_REFCOUNTS if lazy_refcounts else 0,
        incompatible_features=hdr.INCOMPAT_EXTL2 if extended_l2 else 0,
        header_length=hdr.QEMU_V3_HEADER_LENGTH if version == 3 else hdr.V2_HEADER_LENGTH,
        trailing=bytes(8) if version == 3 else b"")
    exts = [(hdr.EXT_BACKING_FORMAT, backing_format.encode())] if backing_format else []
    try:
        cluster0, header = hdr.layout_cluster0(header, exts, backing_file,
                                               feature_table=version == 3)
    except ValueError:
        try:   # small clusters: the feature-name table is optional, drop it
            cluster0, header = hdr.layout_cluster0(header, exts, backing_file,
                                                   feature_table=False)
        except ValueError as exc:
            raise ImageError(str(exc), path) from exc

    total = 1 + rt_clusters + rb_count + l1_clusters + extra
    reftable, refblocks = _refcount_structures(rt_clusters, rb_count, rb_off, total,
                                               cluster_size, refcount_bits)
    try:
        store.truncate(0)
        store.pwrite(cluster0, 0)
        store.pwrite(reftable, rt_off)
        store.pwrite(refblocks, rb_off)
        store.truncate(l1_off + l1_size * 8)
        end = l1_off + l1_size * 8
        if preallocation != "off":
            end = _preallocate(store, preallocation, l1_off, l1_clusters, l1_size, l2_entries,
                               data_clusters, cluster_size, extended_l2)
        store.sync()
    except OSError as exc:
        raise file_error(exc, path, f"Could not create '{path}'") from exc
    return end


def _check_qcow2_options(path: str, cluster_size: int, version: int, refcount_bits: int,
                         lazy_refcounts: bool, extended_l2: bool) -> None:
    """Refuse the options qemu-img refuses, with its texts, in its order."""
    if cluster_size < 512 or cluster_size > (1 << hdr.MAX_CLUSTER_BITS) or (
            cluster_size & (cluster_size - 1)):
        raise UnsupportedImageError(
            f"Cluster size must be a power of two between 512 and 2048k (not {cluster_size})",
            path, feature="cluster size")
    if version not in (2, 3):
        raise UnsupportedImageError(f"Unsupported qcow2 version {version}", path,
                                    feature=f"qcow2 version {version}")
    if refcount_bits not in (1, 2, 4, 8, 16, 32, 64):
        raise UnsupportedImageError(
            f"Refcount width must be a power of two and may not exceed 64 bits "
            f"(not {refcount_bits})", path, feature="refcount width")
    if version == 2 and refcount_bits != 16:
        raise UnsupportedImageError(
            "Different refcount widths than 16 bits require compatibility level 1.1 or above "
            "(use version=3)", path, feature="refcount width")
    if lazy_refcounts and version == 2:
        raise UnsupportedImageError(
            "Lazy refcounts only supported with compatibility level 1.1 and above (use "
            "version=3)", path, feature="lazy refcounts")
    if extended_l2 and (version == 2 or cluster_size < 16384):
        raise UnsupportedImageError("Extended L2 entries need version 3 and clusters of at "
                                    "least 16k", path, feature="extended L2")


def _refcount_sizes(others: int, rb_entries: int, cluster_size: int) -> tuple[int, int]:
    """Clusters of the refcount table and refcount blocks that count ``others`` clusters
    and themselves: the fixed point, as (table clusters, blocks)."""
    rt_clusters, rb_count = 1, 1
    while True:
        total = others + rt_clusters + rb_count
        need_rb = _ceil_div(total, rb_entries)
        need_rt = _ceil_div(need_rb * 8, cluster_size)
        if (need_rb, need_rt) == (rb_count, rt_clusters):
            return rt_clusters, rb_count
        rb_count, rt_clusters = max(need_rb, rb_count), max(need_rt, rt_clusters)


def _refcount_structures(rt_clusters: int, rb_count: int, rb_off: int, total: int,
                         cluster_size: int, refcount_bits: int) -> tuple[bytes, bytes]:
    """The refcount table and blocks of a new image whose first ``total`` clusters are
    in use once each."""
    rb_entries = cluster_size * 8 // refcount_bits
    reftable = bytearray(rt_clusters * cluster_size)
    for i in range(rb_count):
        reftable[i * 8:i * 8 + 8] = (rb_off + i * cluster_size).to_bytes(8, "big")
    refblocks = bytearray(rb_count * cluster_size)
    for i in range(rb_count):
        first = i * rb_entries
        count = min(rb_entries, total - first)
        if count > 0:
            block = bytearray(cluster_size)
            fill_refcounts(block, 0, count, 1, refcount_bits)
            refblocks[i * cluster_size:(i + 1) * cluster_size] = block
    return bytes(reftable), bytes(refblocks)


def _preallocate(store: ByteStore, mode: str, l1_off: int, l1_clusters: int, l1_size: int,
                 l2_entries: int, data_clusters: int, cs: int, extended_l2: bool) -> int:
    """L2 tables (right after the L1 table) mapping every guest cluster to a host
    cluster (right after them); returns where the metadata ends."""
    l2_off = l1_off + l1_clusters * cs
    data_off = l2_off + l1_size * cs
    l1 = array("Q", ((l2_off + t * cs) | OFLAG_COPIED for t in range(l1_size)))
    store.pwrite(to_be(l1), l1_off)
    step = 2 if extended_l2 else 1
    for t in range(l1_size):
        first = t * l2_entries
        count = max(0, min(l2_entries, data_clusters - first))
        table = array("Q", bytes(cs))
        for i in range(count):
            table[i * step] = (data_off + (first + i) * cs) | OFLAG_COPIED
            if extended_l2:
                table[i * step + 1] = 0xFFFFFFFF      # every subcluster allocated
        store.pwrite(to_be(table), l2_off + t * cs)
    data_end = data_off + data_clusters * cs
    if mode == "metadata":
        store.truncate(data_end)
    elif mode == "falloc" and store.fd is not None:
        store.truncate(data_off)
        os.posix_fallocate(store.fd, data_off, data_end - data_off)
    else:       # full (or falloc without a host file): zeros written out
        zeros = bytes(1 << 20)
        for at in range(data_off, data_end, len(zeros)):
            store.pwrite(zeros[:data_end - at], at)
    return data_off

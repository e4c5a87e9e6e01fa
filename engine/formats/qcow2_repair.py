"""Rebuilding the refcounts of a dirty qcow2 image (what QEMU does on a read-write open).

With lazy refcounts, QEMU sets the dirty bit and lets refcounts go stale; if it
is not closed cleanly they stay wrong, while the L1/L2 tables and the data are
valid. Before the first write the engine therefore recounts every cluster from
the metadata and writes a *fresh* refcount table and blocks after the end of
the file. Nothing that is in use is overwritten, so a crash before the switch
leaves the old (dirty) image, and the switch itself is one write of the first
sector (the refcount-table fields and the cleared dirty bit together).
"""

from __future__ import annotations

import struct
from collections import defaultdict
from typing import TYPE_CHECKING

from engine.formats import qcow2_header as hdr
from engine.formats.errors import CorruptImageError, UnsupportedImageError
from engine.formats.image import file_error
from engine.formats.qcow2_layout import OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED, to_be
from engine.formats.qcow2_refcount import set_refcount

if TYPE_CHECKING:
    from engine.formats.qcow2 import Qcow2Image


def count_references(img: Qcow2Image) -> dict[int, int]:
    """How many references each host cluster has, from the header, L1 and L2 tables."""
    h = img.header
    cs = img.cluster_size
    refs: dict[int, int] = defaultdict(int)
    refs[0] += 1
    if h.l1_size:
        first = h.l1_table_offset // cs
        for c in range(first, -(-(h.l1_table_offset + h.l1_size * 8) // cs)):
            refs[c] += 1
    for l1i in range(len(img.l1)):
        table = img._l2(l1i)
        if table is None:
            continue
        refs[(img.l1[l1i] & OFFSET_MASK) // cs] += 1
        for e in table:
            if not e:
                continue
            if e & OFLAG_COMPRESSED:
                coff = e & img._coffset_mask
                nsect = (e >> img._csize_shift) & img._csize_mask
                last = coff + (nsect + 1) * 512 - (coff & 511) - 1
                for c in range(coff // cs, last // cs + 1):
                    refs[c] += 1
            elif e & OFFSET_MASK:
                refs[(e & OFFSET_MASK) // cs] += 1
    return refs


def rebuild_refcounts(img: Qcow2Image) -> None:
    """Recount, write fresh refcount structures, fix COPIED flags, clear the dirty bit."""
    h = img.header
    path = img.path
    if h.nb_snapshots or h.extension(hdr.EXT_BITMAPS) is not None:
        raise UnsupportedImageError(
            "the image is dirty and has internal snapshots or bitmaps; repair it with "
            "'qemu-img check -r all' before writing", path, 72, feature="dirty bit")
    cs = img.cluster_size
    bits = h.refcount_bits
    rc_max = (1 << bits) - 1
    rbe = cs * 8 // bits
    refs = count_references(img)
    size = img.file_size()
    last = max(refs)
    if last * cs >= size:
        # the new structures would go after it: a stray pointer would have the repair
        # write (and count) gigabytes of refcount blocks
        raise CorruptImageError(
            f"the image is dirty and its metadata points at host offset {last * cs:#x}, "
            f"past the end of the file ({size} bytes); its refcounts cannot be rebuilt",
            path, last * cs)
    top = max(last + 1, -(-size // cs))
    k, m = 1, 1
    while True:   # the new structures at [top, top + k + m) count themselves too
        m2 = -(-(top + k + m) // rbe)
        k2 = -(-(m2 * 8) // cs)
        if (k2, m2) == (k, m):
            break
        k, m = max(k, k2), max(m, m2)
    for c in range(top, top + k + m):
        refs[c] += 1
    blocks = [bytearray(cs) for _ in range(m)]
    for c, n in refs.items():
        if n > rc_max:
            raise UnsupportedImageError(
                f"cluster {c} has {n} references; {bits}-bit refcounts hold at most {rc_max}",
                path, c * cs, feature="refcount width")
        set_refcount(blocks[c // rbe], c % rbe, n, bits)
    table = bytearray(k * cs)
    for b in range(m):
        table[8 * b:8 * b + 8] = ((top + k + b) * cs).to_bytes(8, "big")
    try:
        _fix_copied_flags(img, refs)
        img.store.pwrite(bytes(table), top * cs)
        img.store.pwrite(b"".join(blocks), (top + k) * cs)
        img.store.sync()
        sector = bytearray(img.store.pread(512, 0))
        if len(sector) < hdr.V3_HEADER_LENGTH:
            raise CorruptImageError("header shorter than a sector", path, 0)
        struct.pack_into(">QI", sector, 48, top * cs, k)
        struct.pack_into(">Q", sector, 72, h.incompatible_features & ~hdr.INCOMPAT_DIRTY)
        img.store.pwrite(bytes(sector), 0)
        img.store.sync()
    except OSError as exc:
        raise file_error(exc, path, "Could not rebuild refcounts") from exc
    img.header = h.with_fields(refcount_table_offset=top * cs, refcount_table_clusters=k,
                               incompatible_features=h.incompatible_features
                               & ~hdr.INCOMPAT_DIRTY)


def _fix_copied_flags(img: Qcow2Image, refs: dict[int, int]) -> None:
    """COPIED must be set exactly when the referenced cluster's count is 1."""
    cs = img.cluster_size
    l1_changed = False
    for l1i in range(len(img.l1)):
        e1 = img.l1[l1i]
        l2_off = e1 & OFFSET_MASK
        if not l2_off:
            continue
        want = l2_off | (OFLAG_COPIED if refs[l2_off // cs] == 1 else 0)
        if e1 != want:
            img.l1[l1i] = want
            l1_changed = True
        table = img._l2(l1i)
        assert table is not None  # its L1 entry points at a table (l2_off above)
        changed = False
        for i, e in enumerate(table):
            if not e or e & OFLAG_COMPRESSED or not e & OFFSET_MASK:
                continue
            one = refs[(e & OFFSET_MASK) // cs] == 1
            new = (e | OFLAG_COPIED) if one else (e & ~OFLAG_COPIED)
            if new != e:
                table[i] = new
                changed = True
        if changed:
            img.store.pwrite(to_be(table), l2_off)
    if l1_changed:
        img.store.pwrite(to_be(img.l1), img.header.l1_table_offset)

"""Changing a qcow2 image's virtual size, crash-safely (``block_resize``, a commit
into a smaller base).

Growing past what the L1 table covers writes a larger L1 table after the end of the
file (counted first), then switches the header to it together with the new size in
one aligned write of the first sector, then releases the old table. Shrinking first
drops the references to clusters past the new end (L2 and L1 entries), then writes
the new size, then releases the clusters: a crash leaves at worst leaked clusters.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from engine.formats.errors import RequestError
from engine.formats.qcow2_layout import OFFSET_MASK, OFLAG_COMPRESSED, to_be

if TYPE_CHECKING:
    from engine.formats.qcow2_write import Qcow2Writer

SECTOR = 512


def resize(writer: Qcow2Writer, size: int) -> None:
    """Make ``size`` the image's virtual size (a multiple of 512)."""
    img = writer.img
    if size < 0 or size % SECTOR:
        raise RequestError("The new size must be a multiple of 512", img.path)
    writer.publish()
    old = img.virtual_size
    per_l1 = writer.cs * img.l2_entries
    new_l1 = -(-size // per_l1)
    if size < old:
        _drop_past(writer, size, new_l1)
        _write_size(writer, size, None)
        _trim_file(writer)
    elif new_l1 > len(img.l1):
        _grow_l1(writer, size, new_l1)
    else:
        _write_size(writer, size, None)
    img.virtual_size = size


def _write_size(writer: Qcow2Writer, size: int, l1: tuple[int, int] | None) -> None:
    """The header's size (and, when given, the L1 table's offset and entries) in one
    aligned write of the first sector."""
    img = writer.img
    sector = bytearray(writer._pread(0, SECTOR))
    struct.pack_into(">Q", sector, 24, size)
    fields: dict[str, int] = {"size": size}
    if l1 is not None:
        struct.pack_into(">IQ", sector, 36, l1[1], l1[0])
        fields.update(l1_table_offset=l1[0], l1_size=l1[1])
    writer._pwrite(bytes(sector), 0)
    writer.barrier()
    img.header = img.header.with_fields(**fields)


def _grow_l1(writer: Qcow2Writer, size: int, entries: int) -> None:
    img = writer.img
    cs = writer.cs
    h = img.header
    table = img.l1[:]
    table.extend([0] * (entries - len(table)))
    clusters = -(-entries * 8 // cs)
    start = writer.alloc(clusters)
    writer.write_blocks()
    writer._pwrite(to_be(table).ljust(clusters * cs, b"\0"), start * cs)
    writer.barrier()
    if writer.new_entries:
        writer.write_new_entries()
        writer.barrier()
    old_offset, old_size = h.l1_table_offset, h.l1_size
    _write_size(writer, size, (start * cs, entries))
    img.l1 = table
    if old_size:
        first = old_offset // cs
        for c in range(first, -(-(old_offset + old_size * 8) // cs)):
            writer._change(c, -1)
        writer.write_blocks()


def _trim_file(writer: Qcow2Writer) -> None:
    """Cut the file after its last cluster in use, as QEMU does after a shrink."""
    cs = writer.cs
    try:
        clusters = -(-writer.img.store.size() // cs)
    except OSError:
        return
    last = clusters - 1
    while last >= 0 and not writer.refcount(last):
        last -= 1
    if last + 1 < clusters:
        try:
            writer.img.store.truncate((last + 1) * cs)
        except OSError:
            return      # QEMU ignores a failure here too: the image is valid as it is
        writer.end = last + 1


def _drop_past(writer: Qcow2Writer, size: int, keep_l1: int) -> None:
    """Forget every cluster past the new end: references first, then the counts."""
    img = writer.img
    cs = writer.cs
    first_cl = -(-size // cs)
    releases: list[int] = []          # host clusters no longer referenced
    compressed: list[int] = []        # compressed entries no longer referenced
    for l1i in range(first_cl >> img.l2_bits, len(img.l1)):
        table = img._l2(l1i)
        if table is None:
            continue
        lo = max(first_cl - (l1i << img.l2_bits), 0)
        for i in range(lo, img.l2_entries):
            e = table[i]
            if e & OFLAG_COMPRESSED:
                compressed.append(e)
            elif e & OFFSET_MASK:
                releases.append((e & OFFSET_MASK) // cs)
            table[i] = 0
        l2_off = img.l1[l1i] & OFFSET_MASK
        if l1i >= keep_l1:
            img.l1[l1i] = 0
            img._l2_cache.pop(l2_off, None)
            releases.append(l2_off // cs)
        elif lo < img.l2_entries:
            writer._pwrite(to_be(table[lo:]), l2_off + 8 * lo)
    if keep_l1 < len(img.l1):
        writer._pwrite(to_be(img.l1[keep_l1:]), img.header.l1_table_offset + 8 * keep_l1)
    writer.barrier()
    for c in releases:
        writer._change(c, -1)
    for e in compressed:
        writer._release_compressed(e)
    writer.write_blocks()

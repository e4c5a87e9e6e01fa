"""The directories of a qcow2 image beside its tables: internal snapshots and persistent
dirty bitmaps, read as ``qemu-img info`` lists them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.formats.errors import CorruptImageError
from engine.formats.qcow2_header import SNAPSHOT_HEADER_SIZE, HeaderExtension


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One internal snapshot table entry (what ``qemu-img info`` lists)."""

    id: str
    name: str
    l1_table_offset: int
    l1_size: int
    date_sec: int
    date_nsec: int
    vm_clock_nsec: int
    vm_state_size: int
    icount: int | None
    disk_size: int | None

    def info(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.icount is not None:
            out["icount"] = self.icount
        out.update({
            "vm-clock-nsec": self.vm_clock_nsec % 1_000_000_000,
            "name": self.name,
            "date-sec": self.date_sec,
            "date-nsec": self.date_nsec,
            "vm-clock-sec": self.vm_clock_nsec // 1_000_000_000,
            "id": self.id,
            "vm-state-size": self.vm_state_size,
        })
        return out


def parse_snapshots(table: bytes, count: int, base: int, path: str) -> list[Snapshot]:
    """Parse ``count`` snapshot entries from ``table`` (read from file offset ``base``)."""
    out: list[Snapshot] = []
    pos = 0
    for _ in range(count):
        if pos + SNAPSHOT_HEADER_SIZE > len(table):
            raise CorruptImageError("Snapshot table runs past the end of the file", path,
                                    base + pos)
        (l1_off, l1_size, id_len, name_len, dsec, dnsec, vmclock, vmsize,
         extra_len) = struct.unpack_from(">QIHHIIQII", table, pos)
        extra_start = pos + SNAPSHOT_HEADER_SIZE
        end = extra_start + extra_len + id_len + name_len
        if end > len(table):
            raise CorruptImageError("Snapshot table runs past the end of the file", path,
                                    base + pos)
        extra = table[extra_start:extra_start + extra_len]
        if len(extra) >= 8:
            vmsize = struct.unpack_from(">Q", extra, 0)[0]
        disk_size = struct.unpack_from(">Q", extra, 8)[0] if len(extra) >= 16 else None
        icount: int | None = struct.unpack_from(">Q", extra, 16)[0] if len(extra) >= 24 else None
        if icount == (1 << 64) - 1:
            icount = None
        id_start = extra_start + extra_len
        sid = table[id_start:id_start + id_len].decode("utf-8", errors="replace")
        name = table[id_start + id_len:end].decode("utf-8", errors="replace")
        out.append(Snapshot(sid, name, l1_off, l1_size, dsec, dnsec, vmclock, vmsize, icount,
                            disk_size))
        pos = end + ((-end) % 8)
    return out


BITMAP_IN_USE = 1 << 0
BITMAP_AUTO = 1 << 1
BITMAP_ENTRY_HEADER = 24


@dataclass(frozen=True, slots=True)
class Bitmap:
    """One persistent dirty bitmap's directory entry (``flags_offset``: file offset)."""

    name: str
    granularity: int
    flags: int
    flags_offset: int

    def info(self) -> dict[str, object]:
        flags = (["in-use"] if self.flags & BITMAP_IN_USE else []) + (
            ["auto"] if self.flags & BITMAP_AUTO else [])
        return {"flags": flags, "name": self.name, "granularity": self.granularity}


def bitmap_directory_location(ext: HeaderExtension, path: str) -> tuple[int, int, int]:
    """(count, directory size, directory offset) from the bitmaps extension."""
    if len(ext.data) < 24:
        raise CorruptImageError("Bitmaps extension is too short", path, ext.offset)
    count, _, size, offset = struct.unpack_from(">IIQQ", ext.data, 0)
    return count, size, offset


def parse_bitmap_directory(raw: bytes, count: int, base: int, path: str) -> list[Bitmap]:
    out: list[Bitmap] = []
    pos = 0
    for _ in range(count):
        if pos + BITMAP_ENTRY_HEADER > len(raw):
            raise CorruptImageError("Bitmap directory runs past its end", path, base + pos)
        (_table_off, _table_size, flags, _type, gran_bits, name_size,
         extra) = struct.unpack_from(">QIIBBHI", raw, pos)
        name_start = pos + BITMAP_ENTRY_HEADER + extra
        end = name_start + name_size
        if end > len(raw) or gran_bits > 63:
            raise CorruptImageError("Bitmap directory entry is invalid", path, base + pos)
        name = raw[name_start:end].decode("utf-8", errors="replace")
        out.append(Bitmap(name, 1 << gran_bits, flags, base + pos + 12))
        pos = end + ((-end) % 8)
    return out

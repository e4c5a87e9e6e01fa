"""Changing the backing file name and format in a qcow2 header, crash-safely.

What ``qemu-img rebase -u`` does, but ordered so that a crash at any moment
leaves the image with either the old (name, format) pair or the new one.

Why this works: storage writes whole 512-byte sectors atomically (the same
assumption QEMU makes for its own header updates), so everything that must
switch *together* — ``backing_file_offset``/``backing_file_size`` (bytes 8–19)
and the backing-format extension — is placed in the first sector, and that
sector is written with one aligned 512-byte write. The backing-format
extension is therefore always the first extension, right after the header.
Bytes outside the first sector are only ever written where the *old* header
does not look (free space in cluster 0 after the extension area, disjoint
from the old name), and before the switch. So:

1. the new name is written into free space of cluster 0 (barrier);
2. sector 0 is rewritten at once: header fields + extension area (barrier);
3. stale bytes (old name, old extensions) are zeroed, as QEMU does.

When the extension area would change beyond the first sector (the format
extension appears, disappears or changes its padded length while a feature-
name table follows it), the optional feature-name table is dropped so the
whole area fits in the first sector. Only when unknown extensions make the
area larger than a sector no matter what does the rewrite fall back to
ordered, non-atomic writes (name first, then the area, then the header).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from engine.formats import qcow2_header as hdr
from engine.formats.errors import ImageError
from engine.formats.image import file_error
from engine.formats.store import ByteStore

if TYPE_CHECKING:
    from engine.formats.qcow2 import Qcow2Image

SECTOR = 512


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _overlaps(a: int, alen: int, b: int, blen: int) -> bool:
    return a < b + blen and b < a + alen


def _plan(h: hdr.Qcow2Header, old: bytes, exts: list[tuple[int, bytes]], name: str | None,
          feature_table: bool) -> tuple[bytes, bool, int, int] | None:
    """New cluster-0 bytes, whether switching is atomic, name offset and length.

    None when the layout does not fit in the cluster.
    """
    try:
        area, _ = hdr.layout_cluster0(h, exts, None, feature_table=feature_table)
    except ValueError:
        return None
    ext_end = len(area)
    sector = min(SECTOR, h.cluster_size)
    old_read_end = h.extensions_end
    old_name = (h.backing_file_offset, h.backing_file_size) if h.backing_file_offset else (0, 0)
    nlen = len(name.encode("utf-8", errors="surrogateescape")) if name else 0
    area_same_beyond_sector = area[sector:] == old[sector:ext_end]

    candidates: list[int] = []
    if name:
        if ext_end + nlen <= sector:
            candidates.append(ext_end)                      # all inside the first sector
        low = _round8(max(sector, ext_end, old_read_end))
        candidates.append(low)
        candidates.append(_round8(max(low, old_name[0] + old_name[1])))
    for at in candidates if name else [0]:
        if name and at + nlen > h.cluster_size:
            continue
        if name and at >= sector and _overlaps(at, nlen, *old_name):
            continue
        try:
            data, _ = hdr.layout_cluster0(h, exts, name, feature_table=feature_table,
                                          name_at=at if name else None)
        except ValueError:
            continue
        name_in_sector = not name or at + nlen <= sector
        atomic = area_same_beyond_sector and (name_in_sector or at >= sector)
        return data, atomic, at, nlen
    return None


def rewrite_backing(img: Qcow2Image, backing_file: str | None,
                    backing_format: str | None) -> None:
    """Point a writable Qcow2Image at a new backing file (None: no backing file)."""
    # Over 60 lines: the checks come first and the header is rewritten after them in its crash-safe
    # order; that order is the point and reads best in one place.
    if not backing_file:
        backing_file, backing_format = None, None
    path = img.path
    if backing_file is not None:
        if len(backing_file.encode("utf-8", errors="surrogateescape")) > hdr.MAX_BACKING_NAME:
            raise ImageError(f"Backing file name too long (at most {hdr.MAX_BACKING_NAME} "
                             f"bytes): '{backing_file}'", path)
        if backing_format is not None and not 0 < len(backing_format.encode()) <= 15:
            raise ImageError(f"Invalid backing format name '{backing_format}'", path)
    h: hdr.Qcow2Header = img.header
    cs = h.cluster_size
    try:
        old = img.store.pread(cs, 0).ljust(cs, b"\0")
    except OSError as exc:
        raise file_error(exc, path, "Could not read the header", 0) from exc
    others = [(e.type, e.data) for e in h.extensions
              if e.type not in (hdr.EXT_BACKING_FORMAT, hdr.EXT_FEATURE_TABLE)]
    exts = ([(hdr.EXT_BACKING_FORMAT, backing_format.encode())]
            if backing_file and backing_format else []) + others
    had_table = h.extension(hdr.EXT_FEATURE_TABLE) is not None
    plans = [_plan(h, old, exts, backing_file, ft) for ft in ([True, False] if had_table
                                                                else [False])]
    usable = [p for p in plans if p is not None]
    if not usable:
        raise ImageError(f"the backing file name '{backing_file}' does not fit in the first "
                         f"cluster ({cs} bytes) with the header extensions", path)
    data, atomic, at, nlen = next((p for p in usable if p[1]), usable[0])

    sector = min(SECTOR, cs)
    stale_end = max(h.extensions_end, h.backing_file_offset + h.backing_file_size)
    try:
        # 1. beyond the first sector, only where the old header does not look: the new
        #    name (atomic plan), or the whole tail (fallback plan)
        if atomic and nlen and at >= sector:
            _pwrite(img.store, data[at:at + nlen], at)
            img.store.sync()
        elif not atomic and len(data) > sector:
            _pwrite(img.store, data[sector:], sector)
            img.store.sync()
        # 2. the switch: one aligned write of the first sector
        _pwrite(img.store, data[:sector].ljust(sector, b"\0"), 0)
        img.store.sync()
    except OSError as exc:
        raise file_error(exc, path, "Could not rewrite the header", 0) from exc
    # 3. tidy up: the new bytes beyond the sector, zeros where only the old header was.
    #    The switch is done and durable, and readers stop at the end-of-extensions
    #    marker, so a failure here (a full disk) must not report the change as failed.
    with contextlib.suppress(OSError):
        if len(data) > sector:
            _pwrite(img.store, data[sector:], sector)
        tidy_from = max(len(data), sector)
        if stale_end > tidy_from:
            _pwrite(img.store, bytes(stale_end - tidy_from), tidy_from)
    new_cluster0 = img.store.pread(cs, 0)
    img.header = hdr.parse_header(new_cluster0.ljust(cs, b"\0"), path, img.file_size())
    img.backing_file = img.header.backing_file
    img.backing_format = img.header.backing_format
    img.backing_reader = None     # whoever attached one knew the old backing file
    img.backing_zero = None


def _pwrite(store: ByteStore, data: bytes, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += store.pwrite(view[done:], offset + done)

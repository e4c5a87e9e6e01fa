"""Mutated image files and the one property every reader must keep.

A mutation is data (:class:`Mutation`), so a failing example prints as something a
person can replay. Mutations aim at the structures the qcow2 reader trusts: the
header fields, the header extension area, the L1 table, the L2 tables it points
to, the refcount table and blocks — plus plain byte flips anywhere and truncation.
Offsets of those regions are read from the seed's own header (big-endian fields
at the offsets the format fixes), not from the code under test.

:func:`exercise` is the property: open (probed and as qcow2/raw), describe
(``info``, the snapshot table, ``blockgraph info`` itself), map and read bounded
windows of the guest view, open the backing chain, and write one cluster; each
step must succeed or raise :class:`~engine.formats.errors.ImageError` — any other
exception is a bug. Hangs are caught by the caller's time limit.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.formats import ChainReader, allocation_map, close_chain, open_chain, open_image
from engine.formats.cli import main as info_main
from engine.formats.errors import ImageError

CORPUS = Path(__file__).parent / "corpus" / "images"

#: guest bytes read per window: enough to cross several clusters and L2 tables
WINDOW = 256 * 1024

INTERESTING_U64 = (0, 1, 0x200, 0x10000, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF,
                   1 << 63, 1 << 62, (1 << 63) | 0x200, (1 << 62) | 0x1234, 1 << 56, 1 << 40)
INTERESTING_U32 = (0, 1, 2, 3, 8, 9, 12, 16, 21, 22, 31, 32, 64, 104, 112, 0x7FFF_FFFF,
                   0xFFFF_FFFF, 0x1000_0000, 0x6803F97, 0xE2792ACA, 0x6C6F7464)


@dataclass(frozen=True)
class Mutation:
    """Write ``value`` (``width`` bytes, big-endian) at ``offset``, or truncate (width 0)."""

    offset: int
    width: int
    value: int

    def apply(self, data: bytearray) -> None:
        if self.width == 0:
            del data[self.offset:]
            return
        if self.offset + self.width > len(data):
            data.extend(bytes(self.offset + self.width - len(data)))
        mask = (1 << (8 * self.width)) - 1
        data[self.offset:self.offset + self.width] = (self.value & mask).to_bytes(
            self.width, "big")


def seeds() -> list[Path]:
    """The seed images (what the corpus directory holds besides helper files)."""
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".qcow2", ".raw"))


def regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of the structures in a qcow2 seed (empty for raw)."""
    if data[:4] != b"QFI\xfb" or len(data) < 72:
        return {"file": (0, len(data))}
    be32 = lambda off: struct.unpack_from(">I", data, off)[0]  # noqa: E731
    be64 = lambda off: struct.unpack_from(">Q", data, off)[0]  # noqa: E731
    version, cluster_bits = be32(4), be32(20)
    cs = 1 << min(max(cluster_bits, 9), 21)
    hlen = be32(100) if version >= 3 and len(data) >= 104 else 72
    l1_off, l1_size = be64(40), be32(36)
    rt_off, rt_clusters = be64(48), be32(56)
    out = {"header": (0, hlen), "extensions": (hlen, min(cs, len(data))),
           "l1": (l1_off, l1_off + l1_size * 8), "reftable": (rt_off, rt_off + rt_clusters * cs),
           "file": (0, len(data))}
    l2s = [be64(l1_off + 8 * i) & 0x00FF_FFFF_FFFF_FE00 for i in range(l1_size)
           if l1_off + 8 * i + 8 <= len(data)]
    l2s = [o for o in l2s if 0 < o < len(data)]
    if l2s:
        out["l2"] = (l2s[0], min(l2s[0] + cs, len(data)))
    rbs = [be64(rt_off + 8 * i) for i in range(min(rt_clusters * cs // 8, 64))
           if rt_off + 8 * i + 8 <= len(data)]
    rbs = [o for o in rbs if 0 < o < len(data)]
    if rbs:
        out["refblock"] = (rbs[0], min(rbs[0] + cs, len(data)))
    return {k: v for k, v in out.items() if v[1] > v[0]}


def materialise(seed: Path, mutations: list[Mutation], workdir: Path) -> Path:
    """Copy the corpus into ``workdir`` (backing and data files resolve) and mutate one seed."""
    for p in CORPUS.iterdir():
        if p.is_file() and not (workdir / p.name).exists():
            shutil.copyfile(p, workdir / p.name)
    data = bytearray(seed.read_bytes())
    for m in mutations:
        m.apply(data)
    target = workdir / ("fuzzed" + seed.suffix)
    target.write_bytes(bytes(data))
    return target


def _windows(size: int) -> list[tuple[int, int]]:
    if size <= 2 * WINDOW:
        return [(0, size)]
    return [(0, WINDOW), (size // 2 - WINDOW // 2, WINDOW), (size - WINDOW, WINDOW)]


def _step(fn, *args, **kw):  # type: ignore[no-untyped-def]
    """Run one step; an ImageError is an accepted outcome (returns None)."""
    try:
        return fn(*args, **kw)
    except ImageError:
        return None


def _attempt(fn, *args) -> bool:  # type: ignore[no-untyped-def]
    """True when the call returned normally, False when it raised ImageError."""
    try:
        fn(*args)
    except ImageError:
        return False
    return True


def exercise(path: Path, *, write: bool = True) -> None:
    """The property: every operation works or raises ImageError (anything else propagates)."""
    p = str(path)
    for fmt in (None, "qcow2", "raw"):
        img = _step(open_image, p, fmt)
        if img is None:
            continue
        try:
            _step(img.info)
            if img.format == "qcow2":
                _step(img.snapshots)
            for start, length in _windows(img.virtual_size):
                _step(img.block_status, start, length)
                _step(img.read, start, length)
        finally:
            _step(img.close)

    chain = _step(open_chain, p)
    if chain is not None:
        try:
            reader = ChainReader(chain)
            for start, length in _windows(reader.virtual_size):
                _step(reader.read, start, length)
            if reader.virtual_size <= 64 << 20:
                _step(allocation_map, chain)
        finally:
            close_chain(chain)

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = info_main([p, "--backing-chain", "--output=json"])
    assert status in (0, 1), f"blockgraph info exited {status}"
    # the CLI turns unexpected exceptions into "internal error": that is a bug here
    assert "internal error" not in err.getvalue(), err.getvalue()

    if write:
        img = _step(open_image, p, None, writable=True)
        if img is not None:
            try:
                size = img.virtual_size
                cs = img.cluster_size or 512
                if size:
                    at = min((size // 3) // cs * cs, max(size - cs, 0)) + min(7, size - 1)
                    n = min(cs, size - at)
                    payload = bytes(range(256)) * (n // 256 + 1)
                    if _attempt(img.write, at, payload[:n]):
                        back = _step(img.read, at, n)
                        # a write that returned normally must read back (if reading works)
                        assert back is None or back == payload[:n], \
                            "a completed write did not read back"
            finally:
                _step(img.close)


def fresh_dir(base: Path, n: int) -> Path:
    d = base / f"ex{n}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    os.chmod(d, 0o700)
    return d

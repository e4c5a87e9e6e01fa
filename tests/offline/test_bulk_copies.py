"""Offline edits that move many requests' worth of data, against qemu-img on copies.

The chain mixes what the copy paths must get right: several requests (the edits read
and write in pieces of :data:`engine.offline.bulk.CHUNK`), clusters of 512 bytes,
4 KiB and 64 KiB (so the layers' allocation is not aligned on the output's clusters),
compressed clusters, zero-flagged clusters, data clusters that hold only zeros, and
writes that cross a request's boundary.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

import pytest

from engine.formats import fileio
from engine.formats.errors import ImageError
from engine.offline import commit, flatten, rebase
from engine.offline.bulk import CHUNK, Buffer, nonzero_runs, windows
from tests.support.qemu import check, compare, create, map_json, qemu_img, qemu_io

pytestmark = pytest.mark.qemu

MIB = 1 << 20
SIZE = 24 * MIB


def _build(d: Path) -> Path:
    """base (compressed, 512 B clusters) <- mid (4 KiB clusters) <- top (64 KiB), and alt:
    base with a few changes."""
    d.mkdir(parents=True)
    create(d / "seed.raw", SIZE, fmt="raw")
    qemu_io(d / "seed.raw", "write -P 0x11 0 10M", "write -P 0x12 20M 2M", fmt="raw")
    qemu_img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512",
             d / "seed.raw", d / "base.qcow2")
    qemu_io(d / "base.qcow2", "write -P 0 2M 128k", "write -z 5M 64k",
            "write -P 0x13 6M 100k")
    qemu_img("convert", "-f", "qcow2", "-O", "qcow2", "-o", "cluster_size=512",
             d / "base.qcow2", d / "alt.qcow2")
    qemu_io(d / "alt.qcow2", "write -P 0x55 1M 64k", "write -P 0x56 21M 8k")
    create(d / "mid.qcow2", SIZE, backing="base.qcow2", options="cluster_size=4096")
    qemu_io(d / "mid.qcow2", "write -P 0x22 3076k 9M", "write -P 0 8M 12k",
            "write -z 10M 1M", "write -P 0x23 23M 4k")
    create(d / "top.qcow2", SIZE, backing="mid.qcow2")
    qemu_io(d / "top.qcow2", "write -P 0x33 15M 5M", "write -P 0x44 4088k 16k",
            "write -z 22M 256k")
    os.unlink(d / "seed.raw")
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("bulk") / "chain")


@pytest.fixture
def copies(tmp_path: Path, built: Path) -> tuple[Path, Path, Path]:
    """ours (edited by blockgraph), ref (by qemu-img), orig (untouched)."""
    dirs = tuple(tmp_path / name for name in ("ours", "ref", "orig"))
    for d in dirs:
        shutil.copytree(built, d)
    return dirs  # type: ignore[return-value]


def _data(path: Path) -> list[tuple[int, int]]:
    """The guest ranges an image stores data for, merged."""
    out: list[tuple[int, int]] = []
    for e in map_json(path):
        if e["data"] and e["depth"] == 0:
            if out and out[-1][1] == e["start"]:
                out[-1] = (out[-1][0], e["start"] + e["length"])
            else:
                out.append((e["start"], e["start"] + e["length"]))
    return out


def test_the_chain_needs_several_requests() -> None:
    assert SIZE >= 4 * CHUNK and CHUNK % (64 << 10) == 0


def test_flatten_equals_qemu_img_convert_and_allocates_the_same(
        copies: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = copies
    seen: list[tuple[int, int]] = []
    result = flatten(ours / "top.qcow2", ours / "flat.qcow2",
                     progress=lambda done, total: seen.append((done, total)))
    qemu_img("convert", "-f", "qcow2", "-O", "qcow2", ref / "top.qcow2", ref / "flat.qcow2")
    check(ours / "flat.qcow2")
    assert compare(ours / "flat.qcow2", ref / "flat.qcow2")
    assert compare(ours / "flat.qcow2", orig / "top.qcow2")
    # zero detection like qemu-img's: the same clusters hold data, the zeros stay holes
    assert _data(ours / "flat.qcow2") == _data(ref / "flat.qcow2")
    assert result.copied_bytes == sum(b - a for a, b in _data(ours / "flat.qcow2"))
    assert seen[-1] == (SIZE, SIZE) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_flatten_to_raw_equals_qemu_img_convert(copies: tuple[Path, Path, Path]) -> None:
    ours, ref, _orig = copies
    flatten(ours / "top.qcow2", ours / "flat.raw", output_format="raw")
    qemu_img("convert", "-f", "qcow2", "-O", "raw", ref / "top.qcow2", ref / "flat.raw")
    assert (ours / "flat.raw").read_bytes() == (ref / "flat.raw").read_bytes()


def test_safe_rebase_equals_qemu_img_and_copies_only_what_differs(
        copies: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = copies
    result = rebase(ours / "top.qcow2", "alt.qcow2", "qcow2")
    qemu_img("rebase", "-f", "qcow2", "-b", "alt.qcow2", "-F", "qcow2", ref / "top.qcow2")
    check(ours / "top.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    assert compare(ours / "top.qcow2", orig / "top.qcow2")
    top = [(e["start"], e["start"] + e["length"]) for e in map_json(ours / "top.qcow2")
           if e["depth"] == 0 and e["present"]]

    def copied(offset: int) -> bool:
        return any(a <= offset < b for a, b in top)

    # base and alt agree at 13M-15M and mid defines nothing there: nothing to copy
    assert not any(copied(x) for x in range(13 * MIB, 15 * MIB, 4096))
    # mid's data over [3076k, 10M) had to come up (its zeros at 10M read as alt does),
    # and alt's change at 1M
    assert all(copied(x) for x in range(3076 << 10, 10 * MIB, 4096))
    assert not any(copied(x) for x in range(10 * MIB, 11 * MIB, 4096))
    assert copied(1 * MIB)
    assert result.copied_bytes > 8 * MIB


def test_commit_equals_qemu_img_commit(copies: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = copies
    commit(ours / "top.qcow2")
    qemu_img("commit", "-q", "-f", "qcow2", ref / "top.qcow2")
    for d in (ours, ref):
        check(d / "mid.qcow2")
    assert compare(ours / "mid.qcow2", ref / "mid.qcow2")
    assert compare(ours / "top.qcow2", orig / "top.qcow2")


def test_commit_through_layers_equals_qemu_img(copies: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = copies
    commit(ours / "top.qcow2", ours / "base.qcow2")
    qemu_img("commit", "-q", "-f", "qcow2", "-b", ref / "base.qcow2", ref / "top.qcow2")
    check(ours / "base.qcow2")
    assert compare(ours / "base.qcow2", ref / "base.qcow2")
    assert compare(ours / "base.qcow2", orig / "top.qcow2")


def test_a_failed_write_fails_the_flatten_and_leaves_nothing(
        copies: tuple[Path, Path, Path]) -> None:
    """A write that fails on the writer thread is the edit's error: no output file, no
    temporary file, no thread left behind, the source untouched."""
    ours, _ref, orig = copies
    writes = []

    def full_disk(path: str, op: str, offset: int, length: int) -> None:
        """One bulk data write fails; every other write (metadata too) succeeds."""
        if op == "write" and os.path.basename(path).startswith(".blockgraph-") \
                and length >= MIB:
            writes.append(offset)
            if len(writes) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = set(os.listdir(ours))
    with fileio.faults(full_disk), pytest.raises(ImageError) as exc:
        flatten(ours / "top.qcow2", ours / "flat.qcow2")
    assert exc.value.errno == errno.ENOSPC
    assert len(writes) == 3      # nothing was written after the failed write
    assert set(os.listdir(ours)) == before
    assert not [t for t in threading.enumerate() if t.name == "offline-writer"]
    assert compare(ours / "top.qcow2", orig / "top.qcow2")


def test_windows_cover_the_ranges_in_whole_units_and_bounded_requests() -> None:
    unit = 64 << 10
    got = windows([(100, 200), (unit + 5, 3 * unit), (40 * MIB + 1, 41 * MIB)],
                  64 * MIB, unit, chunk=MIB, gap=0)
    assert got == [(0, 3 * unit), (40 * MIB, 41 * MIB)]
    # joined across a small gap, then cut at multiples of the request size
    got = windows([(0, unit), (2 * unit, 3 * MIB)], 64 * MIB, unit, chunk=MIB, gap=unit)
    assert got == [(0, MIB), (MIB, 2 * MIB), (2 * MIB, 3 * MIB)]
    # never past the end of the image
    assert windows([(10 * unit - 3, 10 * unit - 1)], 10 * unit - 1, unit) == \
        [(9 * unit, 10 * unit - 1)]


def test_nonzero_runs_are_the_units_holding_data() -> None:
    unit = 4096
    buf = Buffer(16 * unit)
    buf.view[unit + 7] = 1                  # unit 1
    buf.view[5 * unit:7 * unit] = b"\x01" * (2 * unit)     # units 5, 6
    buf.view[16 * unit - 1] = 9             # the last unit
    base = 3 * unit
    assert nonzero_runs(buf, base, 16 * unit, unit) == [
        (base + unit, base + 2 * unit), (base + 5 * unit, base + 7 * unit),
        (base + 15 * unit, base + 16 * unit)]
    # units follow guest offsets: a buffer read from the middle of a unit
    assert nonzero_runs(buf, base + 100, 2 * unit, unit) == [(base + unit, base + 2 * unit)]

"""Write-back mode: a job's metadata is published once per flush, never unsafely.

What must hold while metadata is held in memory: reads in this process see every
write; the file on disk stays a valid image showing what it showed before (a
crash loses unpublished writes, never the image); a failed request takes back only
itself; a failed barrier drops what it could not make durable and the next flush
says so; after a flush, ``qemu-img check`` is clean and ``qemu-img compare`` agrees
with a raw file written the same way.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.formats import create_qcow2, fileio, open_image
from engine.formats.errors import ImageIOError
from engine.graph.faults import FaultInjector
from tests.formats.crashsim import apply, recording
from tests.formats.test_write import GiB, MiB, Twin, fresh, payload
from tests.support.qemu import check, compare, qemu_img

pytestmark = pytest.mark.qemu

ops = st.lists(
    st.tuples(st.floats(0, 1), st.integers(1, 400_000), st.sampled_from("wwwzf"),
              st.integers(0, 2**32)),
    min_size=1, max_size=30)


def _read(twin: Twin, offset: int, length: int) -> bytes:
    with open(twin.raw, "rb") as f:
        f.seek(offset)
        expected = f.read(length)
    assert twin.img.read(offset, length) == expected
    return expected


@pytest.mark.parametrize("cluster", [512, 65536])
def test_random_writes_in_write_back_mode(cluster: int) -> None:
    """Random writes, zeroes and flushes, with an L2 cache of two tables (so pinned
    tables must survive eviction pressure); reads in between see every write."""
    size = GiB // 8 if cluster == 512 else GiB

    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops)
    def run(sequence: list[tuple[float, int, str, int]]) -> None:
        with tempfile.TemporaryDirectory() as d:
            twin = fresh(Path(d), size, cluster_size=cluster)
            twin.img._l2_cache_max = 2
            twin.img.begin_write_back()
            for where, length, kind, seed in sequence:
                offset = max(0, min(size - length, int(where * size) - length // 2))
                if kind == "f":
                    twin.img.flush()
                    check(twin.qcow2)
                elif kind == "z":
                    twin.zero(offset, length)
                else:
                    twin.write(offset, payload(random.Random(seed), length))
                _read(twin, offset, length)
            twin.img.end_write_back()
            twin.close_and_verify()

    run()


def test_growing_the_refcount_table_in_write_back_mode(tmp_path: Path) -> None:
    twin = fresh(tmp_path, 128 * MiB, cluster_size=512, refcount_bits=16)
    first_table = twin.img.header.refcount_table_offset
    twin.img.begin_write_back()
    rng = random.Random(7)
    for i in range(48):
        twin.write(i * 2 * MiB + rng.randrange(0, 4096), payload(rng, 200_000 + i * 3000))
    assert twin.img.header.refcount_table_offset != first_table
    twin.img.end_write_back()
    twin.close_and_verify()


def test_unpublished_writes_leave_the_file_as_it_was(tmp_path: Path) -> None:
    """What another process (or a crash) sees before the flush: the old image, valid,
    without even a leak; after the flush: the new content."""
    twin = fresh(tmp_path, 64 * MiB)
    twin.write(0, b"\x11" * MiB)
    twin.img.flush()
    before = tmp_path / "before.raw"
    shutil.copyfile(twin.raw, before)
    twin.img.begin_write_back()
    twin.write(MiB // 2, b"\x22" * 3 * MiB)          # half in place, half new clusters
    twin.write(40 * MiB, b"\x33" * 5 * MiB)          # a new L2 table's worth of range
    twin.zero(0, 64 * 1024)
    snapshot = tmp_path / "unflushed.qcow2"
    shutil.copyfile(twin.qcow2, snapshot)
    assert qemu_img("check", str(snapshot), check=False).returncode == 0
    # existing clusters are written in place at once (as QEMU does); only new
    # allocations wait: the unflushed file shows the old data everywhere else
    reopened = open_image(snapshot)
    try:
        assert reopened.read(40 * MiB, 5 * MiB) == bytes(5 * MiB)
        assert reopened.read(MiB, 2 * MiB) == bytes(2 * MiB)
    finally:
        reopened.close()
    twin.img.flush()
    check(twin.qcow2)
    assert compare(twin.qcow2, twin.raw, "qcow2", "raw")
    twin.img.end_write_back()
    twin.close_and_verify()


def test_write_back_is_crash_safe_at_every_crash_point(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every crash point of three deferred writes and their flush: the image checks
    clean or leaks only, and each sector of each write shows its old or new content."""
    path = tmp_path / "w.qcow2"
    create_qcow2(path, 8 * MiB, cluster_size=512, refcount_bits=64)
    with open_image(path, writable=True) as img:
        img.write(0, b"\x01" * 30_000)
    original = tmp_path / "orig.qcow2"
    shutil.copyfile(path, original)
    writes = [(40_000, b"\x02" * 5000), (7 * MiB, b"\x03" * 700), (100, b"\x04" * 900)]
    img = open_image(path, writable=True)
    img.begin_write_back()
    with recording(monkeypatch, lambda: img.fd) as rec:
        for offset, data in writes:
            img.write(offset, data)
        img.flush()
    img.end_write_back()
    img.close()
    with open_image(original) as old:
        olds = [old.read(offset, len(data)) for offset, data in writes]
    seen = 0
    for pieces in rec.crash_states(max_subset=4):
        state = apply(original, pieces, tmp_path / "crash.qcow2")
        proc = qemu_img("check", str(state), check=False)
        assert proc.returncode in (0, 3), proc.stdout
        with open_image(state) as crashed:
            for (offset, data), old_data in zip(writes, olds, strict=True):
                got = crashed.read(offset, len(data))
                # a sector is what a disk writes whole: an in-place write that spans
                # sectors can tear between them, on any storage
                cuts = [0, *range(-offset % 512 or 512, len(data), 512), len(data)]
                for a, b in itertools.pairwise(cuts):
                    assert got[a:b] in (data[a:b], old_data[a:b]), (pieces, offset)
        seen += 1
    assert seen > 10


def _rule_past_end(path: Path, op: str, err: int) -> FaultInjector:
    injector = FaultInjector()
    injector.add(path, op, errno=err, offset=path.stat().st_size)
    return injector


@pytest.mark.parametrize("cluster", [65536, 512])
def test_a_failed_request_takes_back_only_itself(tmp_path: Path, cluster: int) -> None:
    """With 512-byte clusters the failing request spans about a hundred L2 tables in
    a small cache: the tables it restores must be the ones in use."""
    twin = fresh(tmp_path, 64 * MiB, cluster_size=cluster)
    twin.img._l2_cache_max = 2
    for offset in range(20 * MiB, 23 * MiB, max(32 * 1024, 2 * cluster)):  # published tables
        twin.write(offset, b"\x43")
    twin.img.begin_write_back()
    twin.write(0, b"\x44" * 2 * MiB)                     # pending, not published
    injector = _rule_past_end(twin.qcow2, "write", errno.ENOSPC)
    with fileio.faults(injector.check), pytest.raises(ImageIOError) as exc:
        twin.img.write(20 * MiB, b"\x55" * 3 * MiB)      # new clusters: the disk is full
    assert exc.value.errno == errno.ENOSPC
    # clusters already allocated were written in place (a failed write's range is
    # undefined, as in QEMU); each cluster holds its old or its new data, never
    # another cluster's or an unwritten one's
    got = twin.img.read(20 * MiB, 3 * MiB)
    with open(twin.raw, "r+b") as raw:
        raw.seek(20 * MiB)
        old = raw.read(3 * MiB)
        for at in range(0, 3 * MiB, cluster):
            assert got[at:at + cluster] in (old[at:at + cluster], b"\x55" * cluster), at
        raw.seek(20 * MiB)
        raw.write(got)
    assert b"\x55" * cluster in got and bytes(cluster) in got    # both kinds are there
    _read(twin, 0, 2 * MiB)                              # the earlier write is intact
    twin.write(30 * MiB, b"\x66" * MiB)                  # and writing goes on
    twin.write(20 * MiB + 4096, b"\x67" * 10_000)       # also where the failed one was
    _read(twin, 20 * MiB, 3 * MiB)
    twin.img.end_write_back()
    twin.close_and_verify()


@pytest.mark.engine_writes_damaged_images
def test_a_failed_barrier_drops_pending_writes_and_the_flush_says_so(tmp_path: Path) -> None:
    twin = fresh(tmp_path, 64 * MiB)
    twin.write(0, b"\x77" * MiB)
    twin.img.flush()
    published = tmp_path / "published.raw"
    shutil.copyfile(twin.raw, published)
    twin.img.begin_write_back()
    twin.img.write(8 * MiB, b"\x88" * 2 * MiB)
    injector = FaultInjector()
    injector.add(twin.qcow2, "flush", errno=errno.EIO, once=True)
    with fileio.faults(injector.check), pytest.raises(ImageIOError):
        twin.img.flush()
    # the sync failed: those writes may not be on disk, so they are never referenced,
    # and a later flush still reports the loss instead of claiming success
    with pytest.raises(ImageIOError):
        twin.img.flush()
    assert twin.img.read(8 * MiB, 2 * MiB) == bytes(2 * MiB)
    twin.img.end_write_back()
    twin.img.close()
    # the counts were written before the failed sync: their clusters leak (exit 3),
    # as after an interrupted allocation in QEMU; nothing is corrupt
    proc = qemu_img("check", str(twin.qcow2), check=False)
    assert proc.returncode in (0, 3) and "ERROR" not in proc.stdout, proc.stdout
    assert compare(twin.qcow2, published, "qcow2", "raw")


def _aligned_buffer(data: bytes) -> memoryview:
    buf = mmap.mmap(-1, len(data))
    buf[:] = data
    return memoryview(buf)


def test_aligned_bulk_data_is_written_directly(tmp_path: Path) -> None:
    """Whole aligned clusters from a page-aligned buffer bypass the page cache;
    partial clusters and unaligned buffers take the ordinary path; both end equal."""
    twin = fresh(tmp_path, 64 * MiB)
    twin.img.begin_write_back()
    direct = twin.img._get_writer()._direct
    data = random.Random(3).randbytes(4 * MiB)
    twin.img.write(8 * MiB, _aligned_buffer(data))
    with open(twin.raw, "r+b") as raw:
        raw.seek(8 * MiB)
        raw.write(data)
    assert direct._fd is not None, "the direct descriptor was never opened"
    twin.write(20 * MiB + 100, b"\x99" * 70_000)       # partial clusters, bytes
    assert direct._fd is not None and not direct.unsupported
    _read(twin, 8 * MiB, 4 * MiB)
    _read(twin, 20 * MiB, MiB)
    twin.img.end_write_back()
    twin.close_and_verify()


def test_a_file_system_without_direct_io_takes_the_ordinary_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_direct(path: str, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    twin = fresh(tmp_path, 64 * MiB)
    twin.img.begin_write_back()
    data = random.Random(4).randbytes(2 * MiB)
    twin.img.write(0, _aligned_buffer(data))
    with open(twin.raw, "r+b") as raw:
        raw.write(data)
    assert twin.img._writer._direct.unsupported
    twin.img.end_write_back()
    twin.close_and_verify()


def test_a_full_disk_during_a_direct_write_is_reported_and_undone(tmp_path: Path) -> None:
    twin = fresh(tmp_path, 64 * MiB)
    twin.img.begin_write_back()
    injector = _rule_past_end(twin.qcow2, "write", errno.ENOSPC)
    with fileio.faults(injector.check), pytest.raises(ImageIOError) as exc:
        twin.img.write(4 * MiB, _aligned_buffer(b"\xaa" * 2 * MiB))
    assert exc.value.errno == errno.ENOSPC
    assert twin.img._writer._direct._fd is not None     # it was the direct write
    _read(twin, 4 * MiB, 2 * MiB)
    twin.img.end_write_back()
    twin.close_and_verify()

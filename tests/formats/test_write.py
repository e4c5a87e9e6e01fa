"""Writing with engine/formats: every image must pass ``qemu-img check`` (no errors,
no leaks) and equal, per ``qemu-img compare``, a raw file written the same way."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.formats import ChainReader, create_qcow2, open_chain, open_image
from engine.formats.errors import ImageReadOnlyError, UnsupportedImageError
from tests.formats.crashsim import apply, recording
from tests.support.qemu import check, compare, create, qemu_img, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20
GiB = 1 << 30


class Twin:
    """A qcow2 opened by the engine and a raw reference receiving the same writes."""

    def __init__(self, qcow2: Path, raw: Path) -> None:
        self.qcow2, self.raw = qcow2, raw
        self.img = open_image(qcow2, writable=True)
        self.rfd = os.open(raw, os.O_RDWR)

    def write(self, offset: int, data: bytes) -> None:
        self.img.write(offset, data)
        os.pwrite(self.rfd, data, offset)

    def zero(self, offset: int, length: int) -> None:
        self.img.write_zeroes(offset, length)
        os.pwrite(self.rfd, bytes(length), offset)

    def close_and_verify(self, fmt_raw: str = "raw") -> None:
        self.img.close()
        os.close(self.rfd)
        check(self.qcow2)
        assert compare(self.qcow2, self.raw, "qcow2", fmt_raw)


def fresh(tmp: Path, size: int, **opts: int) -> Twin:
    q, r = tmp / "t.qcow2", tmp / "t.raw"
    create_qcow2(q, size, **opts)
    with r.open("wb") as f:
        f.truncate(size)
    return Twin(q, r)


def payload(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


ops = st.lists(
    st.tuples(st.floats(0, 1), st.integers(1, 300_000), st.sampled_from("wwwz"),
              st.integers(0, 2**32)),
    min_size=1, max_size=25)


@pytest.mark.parametrize("cluster", [512, 4096, 65536, 2 * MiB])
def test_random_writes_1gib(cluster: int) -> None:
    @settings(max_examples=6, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops)
    def run(sequence: list[tuple[float, int, str, int]]) -> None:
        with tempfile.TemporaryDirectory() as d:
            twin = fresh(Path(d), GiB, cluster_size=cluster)
            l2_span = cluster * cluster // 8
            for where, length, kind, seed in sequence:
                # half of the writes straddle an L2 table boundary
                base = (int(where * (GiB // l2_span)) * l2_span if seed % 2 else
                        int(where * GiB))
                offset = max(0, min(GiB - length, base - length // 2))
                if kind == "z":
                    twin.zero(offset, length)
                else:
                    twin.write(offset, payload(random.Random(seed), length))
            twin.close_and_verify()

    run()


@pytest.mark.parametrize("refcount_bits", [1, 16, 64])
def test_growing_past_refcount_blocks_and_table(tmp_path: Path, refcount_bits: int) -> None:
    """512-byte clusters: a 64-entry refcount table is outgrown after a few MiB."""
    twin = fresh(tmp_path, 128 * MiB, cluster_size=512, refcount_bits=refcount_bits)
    rng = random.Random(refcount_bits)
    first_table = twin.img.header.refcount_table_offset
    for i in range(48):
        twin.write(i * 2 * MiB + rng.randrange(0, 4096), payload(rng, 200_000 + i * 3000))
    writer = twin.img._writer
    assert sum(1 for e in writer.table if e) > 1          # more than one refcount block
    if refcount_bits > 1:       # 16 bits: 8 MiB per table cluster; 64 bits: 2 MiB
        assert twin.img.header.refcount_table_offset != first_table
    twin.close_and_verify()


@pytest.mark.parametrize("options", ["compat=0.10", "compat=1.1,refcount_bits=8",
                                     "cluster_size=4096,refcount_bits=2",
                                     "preallocation=metadata", "preallocation=falloc",
                                     "lazy_refcounts=on,cluster_size=8192"])
def test_writing_into_images_qemu_made(tmp_path: Path, options: str) -> None:
    img = create(tmp_path / "q.qcow2", 16 * MiB, options=options)
    qemu_io(img, "write -P 0x11 0 3M", "write -z 5M 1M", "write -P 0x22 9M 100k")
    raw = tmp_path / "q.raw"
    qemu_img("convert", "-O", "raw", str(img), str(raw))
    twin = Twin(img, raw)
    rng = random.Random(7)
    for _ in range(40):
        off = rng.randrange(0, 16 * MiB - 70_000)
        if rng.random() < 0.25:
            twin.zero(off, rng.randrange(1, 70_000))
        else:
            twin.write(off, payload(rng, rng.randrange(1, 70_000)))
    twin.close_and_verify()


def test_overwriting_compressed_clusters(tmp_path: Path) -> None:
    src = create(tmp_path / "src.qcow2", 4 * MiB)
    qemu_io(src, "write -P 0x61 0 2M", "write -P 0x62 3M 4k")
    comp = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", str(src), str(comp))
    raw = tmp_path / "c.raw"
    qemu_img("convert", "-O", "raw", str(comp), str(raw))
    twin = Twin(comp, raw)
    twin.write(100, b"\xaa" * 5000)                  # partial: copy-on-write of compressed data
    twin.write(64 * 1024, b"\xbb" * 65536)          # whole cluster
    twin.zero(256 * 1024, 3 * 65536)                 # zero over compressed clusters
    twin.zero(3 * MiB + 10, 100)
    twin.close_and_verify()


@pytest.mark.parametrize("compat", ["1.1", "0.10"])
def test_copy_on_write_from_backing_chain(tmp_path: Path, compat: str) -> None:
    base = create(tmp_path / "base.qcow2", 8 * MiB, options=f"compat={compat}")
    qemu_io(base, "write -P 0x5a 0 8M")
    mid = create(tmp_path / "mid.qcow2", 8 * MiB, backing="base.qcow2",
                 options=f"compat={compat}")
    qemu_io(mid, "write -P 0x6b 1M 1M")
    top = tmp_path / "top.qcow2"
    create_qcow2(top, 8 * MiB, backing_file="mid.qcow2", backing_format="qcow2",
                 version=3 if compat == "1.1" else 2, cluster_size=4096)
    raw = tmp_path / "top.raw"
    qemu_img("convert", "-O", "raw", str(top), str(raw))
    rng = random.Random(3)
    for opened_alone in (True, False):
        chain = [open_image(top, writable=True)] if opened_alone else open_chain(
            top, writable=True)
        rfd = os.open(raw, os.O_RDWR)
        for _ in range(30):
            off, n = rng.randrange(0, 8 * MiB - 9000), rng.randrange(1, 9000)
            if rng.random() < 0.3:
                chain[0].write_zeroes(off, n)
                os.pwrite(rfd, bytes(n), off)
            else:
                data = payload(rng, n)
                chain[0].write(off, data)
                os.pwrite(rfd, data, off)
        if not opened_alone:
            assert ChainReader(chain).read(0, 8 * MiB) == raw.read_bytes()
        for i in chain:
            i.close()
        os.close(rfd)
        reread = open_chain(top)
        assert ChainReader(reread).read(0, 8 * MiB) == raw.read_bytes()
        for i in reread:
            i.close()
    check(top)
    assert compare(top, raw, "qcow2", "raw")


def test_short_last_cluster(tmp_path: Path) -> None:
    twin = fresh(tmp_path, 3 * 65536 + 1536)
    twin.write(3 * 65536 + 1000, b"x" * 536)
    twin.zero(2 * 65536, 65536 + 1536)
    twin.write(3 * 65536, b"y" * 100)
    twin.close_and_verify()


def test_create_matches_qemu_img_info(tmp_path: Path) -> None:
    import json

    cases = [dict(size=GiB), dict(size=5 * MiB, version=2), dict(size=MiB, cluster_size=512),
             dict(size=3 * GiB, cluster_size=2 * MiB, refcount_bits=64),
             dict(size=10 * GiB, cluster_size=512, refcount_bits=1),
             dict(size=MiB, lazy_refcounts=True)]
    for i, case in enumerate(cases):
        ours = tmp_path / f"ours{i}.qcow2"
        create_qcow2(ours, **case)
        check(ours)
        opts = [f"cluster_size={case.get('cluster_size', 65536)}",
                f"refcount_bits={case.get('refcount_bits', 16)}",
                f"compat={'0.10' if case.get('version') == 2 else '1.1'}",
                f"lazy_refcounts={'on' if case.get('lazy_refcounts') else 'off'}"]
        theirs = create(tmp_path / f"theirs{i}.qcow2", case["size"], options=",".join(opts))
        a = json.loads(qemu_img("info", "--output=json", str(ours)).stdout)
        b = json.loads(qemu_img("info", "--output=json", str(theirs)).stdout)
        for key in ("virtual-size", "cluster-size", "format-specific", "dirty-flag"):
            assert a[key] == b[key], (case, key)
        assert compare(ours, theirs)


def test_create_with_backing_and_probe(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    create(tmp_path / "base.raw", 2 * MiB, fmt="raw")
    top = tmp_path / "sub" / "top.qcow2"
    create_qcow2(top, 2 * MiB, backing_file="../base.raw")   # format probed: raw
    info = qemu_img("info", "--output=json", str(top)).stdout
    assert '"backing-filename-format": "raw"' in info
    assert '"backing-filename": "../base.raw"' in info
    check(top)


def test_set_backing_matches_qemu_rebase_unsafe(tmp_path: Path) -> None:
    import json

    for name in ("base.qcow2", "other.raw", "deep/er/base2.qcow2"):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        create(p, 4 * MiB, fmt="raw" if name.endswith("raw") else "qcow2")
    for start_opts in ("compat=1.1", "compat=0.10", "cluster_size=512"):
        ours = create(tmp_path / "ours.qcow2", 4 * MiB, backing="base.qcow2", options=start_opts)
        theirs = tmp_path / "theirs.qcow2"
        shutil.copyfile(ours, theirs)
        for new, fmt in [("other.raw", "raw"), ("deep/er/base2.qcow2", "qcow2"), (None, None),
                         ("base.qcow2", "qcow2"), ("other.raw", "raw")]:
            with open_image(ours, writable=True) as img:
                img.set_backing(new, fmt)
                assert (img.backing_file, img.backing_format) == (new, fmt)
            qemu_img("rebase", "-u", "-b", new or "", *(["-F", fmt] if fmt else []), str(theirs))
            a = json.loads(qemu_img("info", "--output=json", str(ours)).stdout)
            b = json.loads(qemu_img("info", "--output=json", str(theirs)).stdout)
            for key in ("backing-filename", "backing-filename-format", "full-backing-filename"):
                assert a.get(key) == b.get(key), (start_opts, new, key)
            check(ours)


def _header_state(path: Path) -> tuple[str | None, str | None]:
    with open_image(path) as img:
        return img.backing_file, img.backing_format


@pytest.mark.engine_writes_damaged_images
@pytest.mark.parametrize("start_opts,new", [
    ("compat=1.1", ("deep/er/base2.qcow2", "qcow2")),    # rename, same format
    ("compat=1.1", ("other.raw", "raw")),               # new name and format
    ("compat=1.1", (None, None)),                        # drop the backing file
    ("compat=0.10", ("x" * 700 + ".qcow2", "qcow2")),    # name beyond the first sector
    ("cluster_size=512", ("b.raw", "raw")),
])
def test_set_backing_is_atomic_at_every_crash_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_opts: str,
        new: tuple[str | None, str | None]) -> None:
    create(tmp_path / "base.qcow2", MiB)
    img_path = create(tmp_path / "ov.qcow2", MiB, backing="base.qcow2", options=start_opts)
    original = tmp_path / "orig.qcow2"
    shutil.copyfile(img_path, original)
    old = _header_state(original)
    img = open_image(img_path, writable=True)
    with recording(monkeypatch, lambda: img.fd) as rec:
        img.set_backing(*new)
    img.close()
    states = {_header_state(apply(original, pieces, tmp_path / "crash.qcow2"))
              for pieces in rec.crash_states()}
    assert states <= {old, new} and new in states


def test_write_is_crash_safe_at_every_crash_point(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each crash point leaves at worst leaks (check exit 0 or 3), never corruption."""
    path = tmp_path / "w.qcow2"
    create_qcow2(path, 8 * MiB, cluster_size=512, refcount_bits=64)
    with open_image(path, writable=True) as img:
        img.write(0, b"\x01" * 30_000)         # leave the image mid-way through a refblock
    original = tmp_path / "orig.qcow2"
    shutil.copyfile(path, original)
    img = open_image(path, writable=True)
    with recording(monkeypatch, lambda: img.fd) as rec:
        img.write(40_000, b"\x02" * 5000)                # new clusters, new refblock
        img.write(7 * MiB, b"\x03" * 700)                # new L2 table, partial cluster
        img.write_zeroes(0, 1024)
    img.close()
    seen = 0
    for pieces in rec.crash_states(max_subset=4):
        state = apply(original, pieces, tmp_path / "crash.qcow2")
        proc = qemu_img("check", str(state), check=False)
        assert proc.returncode in (0, 3), proc.stdout
        seen += 1
    assert seen > 10


def test_refusals(tmp_path: Path) -> None:
    img = create(tmp_path / "s.qcow2", MiB)
    qemu_img("snapshot", "-c", "s1", str(img))
    with open_image(img, writable=True) as opened, pytest.raises(UnsupportedImageError,
                                                                  match="snapshots"):
        opened.write(0, b"x")
    with open_image(img) as opened, pytest.raises(ImageReadOnlyError):
        opened.write(0, b"x")


def test_writes_mark_persistent_bitmaps_in_use(tmp_path: Path) -> None:
    import json

    img = create(tmp_path / "bm.qcow2", 4 * MiB, options="cluster_size=4096")
    qemu_img("bitmap", "--add", str(img), "bm0")
    with open_image(img, writable=True) as opened:
        opened.write(5000, b"z" * 100_000)
    check(img)
    info = json.loads(qemu_img("info", "--output=json", str(img)).stdout)
    assert info["format-specific"]["data"]["bitmaps"][0]["flags"] == ["in-use", "auto"]
    qemu_io(img, "read -P 0x7a 5000 100000")


def test_refcount_table_growth_is_crash_safe(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that moves the refcount table: every crash point is clean or leaks only."""
    path = tmp_path / "g.qcow2"
    create_qcow2(path, 8 * MiB, cluster_size=512, refcount_bits=64)   # table covers 2 MiB
    with open_image(path, writable=True) as img:
        img.write(0, b"\x01" * 512)
        offset = 512
        for step, limit in ((32768, 4096 - 150), (512, 4096 - 6)):
            while img._writer.end < limit:     # just below the 4096 clusters covered
                img.write(offset, b"\x01" * step)
                offset += step
        first_table = img.header.refcount_table_offset
    original = tmp_path / "orig.qcow2"
    shutil.copyfile(path, original)
    img = open_image(path, writable=True)
    with recording(monkeypatch, lambda: img.fd) as rec:
        img.write(3 * MiB, b"\x02" * 5000)
    assert img.header.refcount_table_offset != first_table
    img.close()
    check(path)
    seen = 0
    for pieces in rec.crash_states(max_subset=3):
        state = apply(original, pieces, tmp_path / "crash.qcow2")
        proc = qemu_img("check", str(state), check=False)
        assert proc.returncode in (0, 3), proc.stdout
        seen += 1
    assert seen > 10

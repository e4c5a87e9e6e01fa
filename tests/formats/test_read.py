"""Reading images QEMU wrote: every byte must equal ``qemu-img convert -O raw``."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formats import ChainReader, allocation_map, open_chain, open_image
from tests.support.qemu import create, map_json, qemu_img, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20


def raw_of(path: Path, tmp_path: Path) -> bytes:
    out = tmp_path / f"{path.name}.raw"
    qemu_img("convert", "-O", "raw", str(path), str(out))
    return out.read_bytes()


def guest_view(path: Path) -> bytes:
    chain = open_chain(path)
    try:
        return ChainReader(chain).read(0, chain[0].virtual_size)
    finally:
        for img in chain:
            img.close()


def l2_span(cluster: int) -> int:
    return cluster * (cluster // 8)


def image_size(cluster: int) -> int:
    """Big enough to cross an L2 table boundary when that is cheap."""
    return max(8 * MiB, 2 * l2_span(cluster)) if cluster <= 65536 else 64 * MiB


def _patterns(img: Path, cluster: int, size: int = 8 * MiB) -> None:
    """Data at cluster and L2 boundaries, partial clusters and zero clusters."""
    cmds = ["write -P 0x11 0 3k", f"write -P 0x22 {cluster - 512} 1k",
            f"write -P 0x44 {3 * MiB + 512} 5k", f"write -z {2 * MiB} {cluster}"]
    if l2_span(cluster) + cluster <= size:
        cmds.append(f"write -P 0x33 {l2_span(cluster) - cluster} {2 * cluster}")
    qemu_io(img, *cmds)


@pytest.mark.parametrize("cluster", [512, 4096, 65536, 2 * MiB])
@pytest.mark.parametrize("compat", ["1.1", "0.10"])
def test_patterns_match_qemu(tmp_path: Path, cluster: int, compat: str) -> None:
    size = image_size(cluster)
    img = create(tmp_path / "a.qcow2", size, options=f"cluster_size={cluster},compat={compat}")
    _patterns(img, cluster, size)
    raw = tmp_path / "a.raw"
    qemu_img("convert", "-O", "raw", str(img), str(raw))
    # compare where the patterns are; everything else must be unallocated here
    windows = [(0, 8 * MiB)]
    if 8 * MiB <= l2_span(cluster) <= size - MiB:
        windows.append((l2_span(cluster) - MiB, 2 * MiB))
    with open_image(img) as opened, raw.open("rb") as expected:
        assert opened.format == "qcow2" and opened.cluster_size == cluster
        assert opened.virtual_size == size
        for start, length in windows:
            expected.seek(start)
            assert opened.read(start, length) == expected.read(length), hex(start)
        allocated = [e for e in opened.block_status(0, size) if e.state != "unallocated"]
    assert all(any(w <= e.start and e.end <= w + n for w, n in windows) for e in allocated)


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16, 32, 64])
def test_refcount_widths(tmp_path: Path, bits: int) -> None:
    img = create(tmp_path / "r.qcow2", 4 * MiB, options=f"refcount_bits={bits},cluster_size=4k")
    _patterns(img, 4096)
    assert guest_view(img) == raw_of(img, tmp_path)
    with open_image(img) as opened:
        assert opened.info()["format-specific"]["data"]["refcount-bits"] == bits


def test_three_layers_with_zero_clusters(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", 16 * MiB)
    qemu_io(base, "write -P 0xab 0 2M", "write -P 0xac 6M 1M")
    mid = create(tmp_path / "mid.qcow2", 16 * MiB, backing="base.qcow2")
    qemu_io(mid, "write -P 0xcd 1M 64k", "write -z 6M 64k", "write -P 0xce 9M 3k")
    top = create(tmp_path / "top.qcow2", 16 * MiB, backing="mid.qcow2")
    qemu_io(top, "write -P 0xef 4M 128k", "write -z 0 64k", "write -P 0xee 6352896 8k")
    assert guest_view(top) == raw_of(top, tmp_path)
    chain = open_chain(top)
    try:
        ours = allocation_map(chain)
    finally:
        for i in chain:
            i.close()
    assert ours == map_json(top)


def test_backing_smaller_than_overlay_reads_zeros_past_its_end(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", 1 * MiB)
    qemu_io(base, "write -P 0x5a 0 1M")
    top = create(tmp_path / "top.qcow2", 4 * MiB, backing="base.qcow2")
    assert guest_view(top) == raw_of(top, tmp_path)


def test_raw_backing_file(tmp_path: Path) -> None:
    base = create(tmp_path / "base.raw", 2 * MiB, fmt="raw")
    qemu_io(base, "write -P 0x77 64k 100k", fmt="raw")
    top = create(tmp_path / "top.qcow2", 2 * MiB, backing="base.raw", backing_fmt="raw")
    qemu_io(top, "write -P 0x78 128k 4k")
    assert guest_view(top) == raw_of(top, tmp_path)
    with open_image(top) as img:
        assert img.backing_format == "raw"
    chain = open_chain(top)
    try:
        assert [i.format for i in chain] == ["qcow2", "raw"]
        ours = allocation_map(chain)
    finally:
        for i in chain:
            i.close()
    assert ours == map_json(top)


@pytest.mark.parametrize("cluster", [4096, 65536])
def test_compressed_clusters(tmp_path: Path, cluster: int) -> None:
    src = create(tmp_path / "src.qcow2", 4 * MiB)
    # compressible and incompressible-ish content, partly sharing host clusters
    qemu_io(src, "write -P 0x61 0 1M", "write -P 0x62 1052672 12k", "write -P 0x63 3M 512")
    dst = tmp_path / "comp.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", "-o", f"cluster_size={cluster}", str(src), str(dst))
    with open_image(dst) as img:
        assert any(e.compressed for e in img.block_status(0, img.virtual_size))
        assert img.read(0, img.virtual_size) == raw_of(src, tmp_path)
        # reads that start and end inside compressed clusters
        assert img.read(1 * MiB + 100, 5000) == raw_of(src, tmp_path)[1 * MiB + 100:1 * MiB + 5100]


def test_partial_reads_agree_with_whole_read(tmp_path: Path) -> None:
    img = create(tmp_path / "p.qcow2", 4 * MiB, options="cluster_size=4k")
    _patterns(img, 4096)
    whole = raw_of(img, tmp_path)
    with open_image(img) as opened:
        for off, length in [(0, 1), (511, 2), (4095, 4098), (3 * MiB, 7000), (4 * MiB - 1, 1),
                            (123456, 0)]:
            assert opened.read(off, length) == whole[off:off + length]


def test_raw_image(tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"")
    with raw.open("r+b") as f:
        f.truncate(3 * MiB)
        f.seek(MiB)
        f.write(b"\x99" * 70000)
    with open_image(raw) as img:
        assert img.format == "raw" and img.cluster_size is None and img.virtual_size == 3 * MiB
        assert img.read(0, 3 * MiB) == raw.read_bytes()
        states = {e.state for e in img.block_status(0, 3 * MiB)}
        assert "data" in states
    assert map_json(raw, fmt="raw") == [
        {k: v for k, v in e.items()} for e in _raw_map(raw)]


def _raw_map(raw: Path) -> list[dict[str, object]]:
    with open_image(raw) as img:
        return allocation_map([img])


def test_description_attributes(tmp_path: Path) -> None:
    img = create(tmp_path / "d.qcow2", 3 * MiB, options="cluster_size=8192,lazy_refcounts=on")
    qemu_io(img, "write -P 1 0 100k")
    qemu_img("snapshot", "-c", "one", str(img))
    with open_image(img) as opened:
        assert (opened.virtual_size, opened.cluster_size) == (3 * MiB, 8192)
        assert (opened.dirty, opened.corrupt, opened.snapshot_count) == (False, False, 1)
        assert opened.incompatible_features == []
        assert opened.actual_size() == opened.info()["actual-size"] > 0
    with img.open("r+b") as f:      # set the dirty bit by hand
        f.seek(79)
        f.write(b"\x01")
    with open_image(img) as opened:
        assert opened.dirty and opened.incompatible_features == ["dirty bit"]


def test_readinto_overwrites_every_byte_of_a_dirty_buffer(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", 2 * MiB, options="cluster_size=4096")
    qemu_io(base, "write -P 0x31 0 1M")
    top = create(tmp_path / "top.qcow2", 2 * MiB, backing="base.qcow2",
                 options="cluster_size=65536")
    qemu_io(top, "write -z 64k 64k", "write -P 0x32 300k 10k")
    expected = raw_of(top, tmp_path)
    chain = open_chain(top)
    try:
        buf = bytearray(b"\xff" * (2 * MiB))
        ChainReader(chain).readinto(0, memoryview(buf))
        assert buf == expected
        layer = bytearray(b"\xee" * (2 * MiB))
        chain[0].readinto(0, memoryview(layer))
        assert layer == chain[0].read(0, 2 * MiB)
    finally:
        for img in chain:
            img.close()


def test_a_read_waits_for_a_write_in_progress(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A write updates its cached L2 entries before the data is on disk; a reader
    on another thread (a job) must not see that half-done state."""
    import os
    import threading

    from engine.formats import create_qcow2

    path = tmp_path / "t.qcow2"
    create_qcow2(path, 8 * MiB, cluster_size=4096)
    img = open_image(path, writable=True)
    seen: list[object] = []
    real_pwritev = os.pwritev
    started = threading.Event()
    threads: list[threading.Thread] = []

    def reader() -> None:
        started.set()
        try:
            seen.append(img.read(0, 4096))
        except Exception as exc:
            seen.append(exc)

    def pwritev(fd: int, bufs: list, offset: int) -> int:
        if fd == img.fd and not started.is_set():   # the data write of our request
            t = threading.Thread(target=reader)
            threads.append(t)
            t.start()
            t.join(0.3)          # give the reader every chance to overtake
        return real_pwritev(fd, bufs, offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    img.write(0, b"\x07" * 8192)
    threads[0].join(5)
    img.close()
    assert seen == [b"\x07" * 4096]


def test_map_of_compressed_and_zero_clusters(tmp_path: Path) -> None:
    src = create(tmp_path / "m1.qcow2", 4 * MiB)
    qemu_io(src, "write -P 1 0 1M", "write -P 2 2M 64k")
    img = tmp_path / "m2.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", str(src), str(img))
    # plain zero clusters over compressed ones, and a preallocated zero cluster
    qemu_io(img, "write -z 0 64k", "write -z 128k 64k", "write -P 3 3M 64k", "write -z 3M 64k")
    chain = open_chain(img)
    try:
        ours = allocation_map(chain)
    finally:
        for i in chain:
            i.close()
    assert ours == map_json(img)
    assert any("offset" in e and e["zero"] for e in ours)


def test_map_of_images_we_wrote(tmp_path: Path) -> None:
    from engine.formats import create_qcow2

    base = tmp_path / "base.qcow2"
    create_qcow2(base, 4 * MiB, cluster_size=4096)
    top = tmp_path / "top.qcow2"
    create_qcow2(top, 4 * MiB, backing_file="base.qcow2", backing_format="qcow2")
    with open_image(base, writable=True) as img:
        img.write(0, b"b" * 300_000)
        img.write_zeroes(2 * MiB, 8192)
    with open_image(top, writable=True) as img:
        img.write(100_000, b"t" * 70_000)
        img.write_zeroes(MiB, 2 * 65536)
        img.write(3 * MiB + 5, b"u")
    chain = open_chain(top)
    try:
        assert allocation_map(chain) == map_json(top)
    finally:
        for i in chain:
            i.close()

"""Random damage to a valid image's metadata: every outcome is a result or an ImageError.

Never another exception type, never a hang: the engine must treat every byte of a
file as untrusted input.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.formats import ChainReader, allocation_map, open_chain, open_image
from engine.formats import cli as info_cli
from engine.formats.errors import ImageError
from tests.support.qemu import create, qemu_img, qemu_io

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(120)]

MiB = 1 << 20


@pytest.fixture(scope="module", params=["snapshot", "writable"])
def pristine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, list[tuple[int, int]]]:
    """A small image with data, zero and compressed clusters, plus where its metadata is.

    One variant has an internal snapshot (reads and info), the other none, so the
    write path runs on the damaged metadata too.
    """
    d = tmp_path_factory.mktemp("fuzz")
    src = create(d / "src.qcow2", 2 * MiB, options="cluster_size=4096")
    qemu_io(src, "write -P 0x11 0 300k", "write -P 0x22 1M 64k")
    img = d / "img.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", str(src), str(img))
    qemu_io(img, "write -P 0x33 500k 20k", "write -z 1M 8k")
    if request.param == "snapshot":
        qemu_img("snapshot", "-c", "s", str(img))
    with open_image(img) as opened:
        h = opened.header
        regions = [(0, 4096), (h.l1_table_offset, 4096),
                   (opened.l1[0] & 0x00FFFFFFFFFFFE00, 4096),
                   (h.refcount_table_offset, 4096),
                   (h.snapshots_offset or h.refcount_table_offset + 4096, 512)]
    return img, regions


damage = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4095), st.integers(0, 7),
                            st.sampled_from(["flip", "byte", "u64max", "zero8"])),
                  min_size=1, max_size=6)


def _damage(img: Path, regions: list[tuple[int, int]],
            hits: list[tuple[int, int, int, str]]) -> None:
    with img.open("r+b") as f:
        for region, pos, bit, how in hits:
            base, length = regions[region]
            off = base + pos % length
            f.seek(off)
            old = f.read(8).ljust(8, b"\0")
            f.seek(off)
            if how == "flip":
                f.write(bytes([old[0] ^ (1 << bit)]))
            elif how == "byte":
                f.write(bytes([(old[0] + 37 * (bit + 1)) & 0xFF]))
            elif how == "u64max":
                f.write(struct.pack(">Q", (1 << 64) - 1 >> bit))
            else:
                f.write(bytes(8))


def _exercise(path: Path) -> None:
    try:
        with open_image(path) as img:
            img.info()
            img.block_status(0, img.virtual_size)
            n = min(img.virtual_size, 2 * MiB)
            img.read(0, n)
    except ImageError:
        pass
    try:
        chain = open_chain(path)
        try:
            ChainReader(chain).read(0, min(chain[0].virtual_size, 2 * MiB))
            allocation_map(chain)
        finally:
            for i in chain:
                i.close()
    except ImageError:
        pass
    try:
        with open_image(path, writable=True) as img:
            img.write(0, b"\x5a" * 5000)
            img.write_zeroes(8192, 8192)
            img.set_backing("elsewhere.qcow2", "qcow2")
    except ImageError:
        pass


def test_damaged_metadata_gives_results_or_image_errors(
        pristine: tuple[Path, list[tuple[int, int]]], capsys: pytest.CaptureFixture[str]) -> None:
    img, regions = pristine

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(damage)
    def run(hits: list[tuple[int, int, int, str]]) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "broken.qcow2"
            shutil.copyfile(img, path)
            _damage(path, regions, hits)
            code = info_cli.main(["--output=json", str(path)])
            _, err = capsys.readouterr()
            assert code in (0, 1) and "Traceback" not in err and "internal error" not in err
            _exercise(path)

    run()

"""Large requests that allocate write their data with direct I/O, and lose nothing.

A qcow2 request that allocates clusters is followed by a barrier (its data on the
disk before the tables point at it), so a large run of new clusters is written with
``O_DIRECT`` instead of through fresh page-cache pages that the barrier would write
out at once. Rewrites in place need no barrier and stay in the page cache. Either
way the image reads as qemu-io's image written the same way and checks clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formats import create_qcow2, open_image
from engine.formats.buffers import aligned_buffer
from engine.formats.direct import DirectWriter
from tests.support.qemu import check, compare, create, qemu_io

MIB = 1 << 20


@pytest.fixture
def direct_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lengths written with direct I/O (what :class:`DirectWriter` took)."""
    taken: list[int] = []
    original = DirectWriter.writev

    def spy(self: DirectWriter, offset: int, bufs: list[memoryview]) -> bool:
        done = original(self, offset, bufs)
        if done:
            taken.append(sum(len(b) for b in bufs))
        return done

    monkeypatch.setattr(DirectWriter, "writev", spy)
    return taken


def _pattern(n: int, byte: int) -> memoryview:
    buf = aligned_buffer(n)
    buf.write(bytes([byte]) * n)
    return memoryview(buf)


def test_a_large_allocating_request_goes_direct_and_reads_back(
        tmp_path: Path, direct_writes: list[int]) -> None:
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    create_qcow2(ours, 64 * MIB)
    create(theirs, 64 * MIB)
    with open_image(ours, writable=True) as img:
        img.write(4 * MIB, _pattern(8 * MIB, 0x5A))
        img.write(20 * MIB + 512, _pattern(3 * MIB, 0x6B))    # unaligned: partial clusters
    qemu_io(theirs, f"write -P 0x5a {4 * MIB} {8 * MIB}",
            f"write -P 0x6b {20 * MIB + 512} {3 * MIB}")
    assert sum(direct_writes) >= 8 * MIB
    assert compare(ours, theirs)
    check(ours)


def test_a_rewrite_in_place_stays_in_the_page_cache(
        tmp_path: Path, direct_writes: list[int]) -> None:
    image = tmp_path / "a.qcow2"
    create_qcow2(image, 16 * MIB)
    with open_image(image, writable=True) as img:
        img.write(0, _pattern(4 * MIB, 0x11))
        direct_writes.clear()
        img.write(0, _pattern(4 * MIB, 0x22))     # every cluster allocated already
        assert img.read(0, 4 * MIB) == b"\x22" * (4 * MIB)
    assert direct_writes == []
    check(image)

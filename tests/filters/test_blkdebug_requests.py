"""``blkdebug`` events and request shaping against qemu-storage-daemon 7.2: an error
injected on one of QEMU's events fails the same guest request with the same errno and
leaves the same bytes and image state; ``align`` pads writes with reads and
``max-transfer`` cuts requests into pieces that fail one by one."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from tests.filters.peers import Peers
from tests.support import qemu

pytestmark = pytest.mark.qemu

KIB = 1024


def _raw(d: Path) -> None:
    qemu.qemu_img("create", "-f", "raw", d / "disk.raw", "1M")


def _qcow2_with_data(d: Path) -> None:
    qemu.create(d / "disk.qcow2", "1M")
    qemu.qemu_io(d / "disk.qcow2", "write -P 0x11 0 128k")


def _fresh_qcow2(d: Path) -> None:
    qemu.create(d / "disk.qcow2", "1M")


def _add(peers: Peers, fmt: str, image: str, **blkdebug: Any) -> None:
    peers.both("blockdev-add", {
        "driver": fmt, "node-name": "disk", "file": {
            "driver": "blkdebug", "node-name": "dbg", **blkdebug,
            "image": {"driver": "file", "filename": "{dir}/" + image}}})


def _bytes(peers: Peers, image: str) -> list[bytes]:
    return [(peers.dirs[name] / image).read_bytes() for name in ("qsd", "engine")]


def test_max_transfer_pieces_fail_one_by_one(tmp_path: Path) -> None:
    """A 256 KiB write through ``max-transfer=64k`` is four requests; the rule fails the
    third (it holds sector 320), so the first two are on disk and the rest is not."""
    peers = Peers(tmp_path, _raw)
    try:
        _add(peers, "raw", "disk.raw", **{"max-transfer": 64 * KIB, "inject-error": [
            {"event": "pwritev", "sector": 320, "once": True, "iotype": "write"}]})
        assert peers.write("disk", 0, b"\x5a" * (256 * KIB)) == [errno.EIO, errno.EIO]
        qsd, engine = _bytes(peers, "disk.raw")
        assert qsd == engine
        assert qsd[:128 * KIB] == b"\x5a" * (128 * KIB)
        assert qsd[128 * KIB:] == bytes(len(qsd) - 128 * KIB)
        # the rule was once: the same write now goes through whole
        assert peers.write("disk", 0, b"\x5b" * (256 * KIB)) == [0, 0]
        qsd, engine = _bytes(peers, "disk.raw")
        assert qsd == engine and qsd[:256 * KIB] == b"\x5b" * (256 * KIB)
    finally:
        peers.close()


def _raw_33(d: Path) -> None:
    _raw(d)
    qemu.qemu_io(d / "disk.raw", "write -P 0x33 0 1M", fmt="raw")


def test_align_pads_an_unaligned_write_with_reads(tmp_path: Path) -> None:
    """With ``align=4096`` a 512-byte write first reads its 4 KiB block
    (``pwritev_rmw_head``). QEMU 7.2 does not fail the write when that read fails: it
    writes the whole block, the bytes the read did not fill as zeros. The rule stays
    active: a read now fails."""
    peers = Peers(tmp_path, _raw_33)
    try:
        _add(peers, "raw", "disk.raw", align=4096, **{"inject-error": [
            {"event": "pwritev_rmw_head", "iotype": "read", "errno": errno.ENOSPC}]})
        assert peers.write("disk", 4096 + 512, b"\x77" * 512) == [0, 0]
        qsd, engine = _bytes(peers, "disk.raw")
        assert qsd == engine
        assert qsd[:4096] == b"\x33" * 4096 and qsd[8192:8200] == b"\x33" * 8
        assert qsd[4096:8192] == bytes(512) + b"\x77" * 512 + bytes(3072)
        assert peers.read("disk", 0, 512) == [errno.ENOSPC] * 2
    finally:
        peers.close()


@pytest.mark.parametrize(("offset", "length", "event"), [
    (1024, 1024, "pwritev_rmw_tail"),            # one block: one read, both events
    (1024, 1024, "pwritev_rmw_after_head"),
    (3072, 2048, "pwritev_rmw_tail"),            # two adjacent blocks: one read
    (1024, 8192, "pwritev_rmw_after_tail"),      # head and tail apart: two reads
    (4096, 1024, "pwritev_rmw_head"),            # aligned start: no head read
])
def test_the_padding_events_of_an_unaligned_write(tmp_path: Path, offset: int,
                                                  length: int, event: str) -> None:
    """A rule on one of the read-modify-write events fails the write that fires it
    (a write rule), or lets it go when the write does not fire it."""
    peers = Peers(tmp_path, _raw_33)
    try:
        _add(peers, "raw", "disk.raw", align=4096, **{"inject-error": [
            {"event": event, "iotype": "write", "once": True}]})
        first = peers.write("disk", offset, b"\x44" * length)
        assert first[0] == first[1]
        peers.write("disk", offset, b"\x44" * length)
        qsd, engine = _bytes(peers, "disk.raw")
        assert qsd == engine and qsd[offset:offset + length] == b"\x44" * length
    finally:
        peers.close()
    fires = event != "pwritev_rmw_head"
    assert first == ([errno.EIO] * 2 if fires else [0, 0])


def test_an_l2_table_that_cannot_be_loaded_fails_the_read(tmp_path: Path) -> None:
    peers = Peers(tmp_path, _qcow2_with_data)
    try:
        _add(peers, "qcow2", "disk.qcow2", **{"inject-error": [
            {"event": "l2_load", "iotype": "read", "once": True}]})
        assert peers.read("disk", 0, 4096) == [errno.EIO] * 2
        # once: the table loads now, and stays cached
        assert peers.read("disk", 0, 4096) == [b"\x11" * 4096] * 2
    finally:
        peers.close()


@pytest.mark.parametrize("event", ["l1_update", "l2_update", "cluster_alloc",
                                   "refblock_update_part", "write_aio"])
def test_a_failed_metadata_or_data_write_fails_the_guest_write(tmp_path: Path,
                                                               event: str) -> None:
    """A write to a fresh image allocates an L2 table and a data cluster: an error on
    each of QEMU's events on the way fails the guest's write on both peers; the image
    then reads as before the write, has no corruption, and takes the write again."""
    peers = Peers(tmp_path, _fresh_qcow2)
    try:
        _add(peers, "qcow2", "disk.qcow2", **{"inject-error": [
            {"event": event, "once": True}]})
        assert peers.write("disk", 65536, b"\x5a" * 65536) == [errno.EIO] * 2
        assert peers.read("disk", 65536, 65536) == [bytes(65536)] * 2
        assert peers.write("disk", 65536, b"\x5a" * 65536) == [0, 0]
        assert peers.read("disk", 65536, 65536) == [b"\x5a" * 65536] * 2
        peers.both("blockdev-del", {"node-name": "disk"})
    finally:
        peers.close()
    for name in ("qsd", "engine"):
        report = _check(peers.dirs[name] / "disk.qcow2")
        assert report.get("corruptions", 0) == 0, (name, report)
    q, e = (peers.dirs[name] / "disk.qcow2" for name in ("qsd", "engine"))
    assert qemu.compare(q, e)


def _check(path: Path) -> dict[str, Any]:
    """``qemu-img check`` (leaked clusters allowed: a failed write may leave some)."""
    proc = qemu.qemu_img("check", "--output=json", str(path), check=False)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize("event", ["flush_to_os", "flush_to_disk"])
def test_a_flush_error_on_the_flush_events_of_a_qcow2_parent(tmp_path: Path,
                                                            event: str) -> None:
    """A qcow2 node's flush announces ``flush_to_os`` and, having taken writes,
    ``flush_to_disk`` to its file: a flush rule on either fails the guest's flush that
    follows its write; the data written stays readable."""
    peers = Peers(tmp_path, _fresh_qcow2)
    try:
        _add(peers, "qcow2", "disk.qcow2", **{"inject-error": [
            {"event": event, "iotype": "flush", "once": True}]})
        assert peers.write("disk", 0, b"\x5a" * 4096) == [errno.EIO] * 2
        assert peers.read("disk", 0, 4096) == [b"\x5a" * 4096] * 2
        assert peers.write("disk", 0, b"\x5b" * 4096) == [0, 0]
    finally:
        peers.close()


@pytest.mark.parametrize(("sector", "fails"), [(130, True), (518, True), (520, False)])
def test_max_transfer_cuts_reads_and_align_widens_them(tmp_path: Path, sector: int,
                                                      fails: bool) -> None:
    """A 192 KiB read at 66 KiB is widened to 64..260 KiB (``align``) and cut into
    64 KiB pieces: a rule on a sector the widening added (65 KiB, 259 KiB) fails it,
    one past it (260 KiB) does not."""
    peers = Peers(tmp_path, _raw_33)
    try:
        _add(peers, "raw", "disk.raw", align=4096, **{"max-transfer": 64 * KIB,
                                                       "inject-error": [
            {"event": "none", "iotype": "read", "sector": sector}]})
        got = peers.read("disk", 66 * KIB, 192 * KIB)
        assert got == ([errno.EIO] * 2 if fails else [b"\x33" * (192 * KIB)] * 2)
    finally:
        peers.close()

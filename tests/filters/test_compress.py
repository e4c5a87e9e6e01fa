"""``compress`` filters against qemu-storage-daemon 7.2: what may sit below one (QEMU's
refusals by the child's driver), the graph it makes, and guest writes through it that
land as compressed clusters — whole clusters, partial ones widened with what they held,
the last short cluster of an image, clusters too random to shrink, clusters packed two
to a host cluster — compared afterwards with ``qemu-img map``/``check``/``compare`` and
by reading the compressed descriptors (cf. QEMU's iotests 245 and 214)."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.guest import Reads, guest_write, write, write_data
from tests.support.qemu import check, compare, create, map_json, qemu_io

pytestmark = pytest.mark.qemu

KiB = 1024
MiB = 1 << 20


def images(d: Path) -> None:
    create(d / "a.qcow2", MiB)
    qemu_io(d / "a.qcow2", "write -P 7 0 64k", "write -P 8 192k 64k")
    create(d / "small.qcow2", "200k", options="cluster_size=4096")
    create(d / "v2.qcow2", MiB, options="compat=0.10")
    create(d / "back.qcow2", MiB)
    qemu_io(d / "back.qcow2", "write -P 3 0 1M")
    create(d / "over.qcow2", MiB, backing="back.qcow2", backing_fmt="qcow2")
    (d / "r.raw").write_bytes(bytes(MiB))


def qcow2(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": "{dir}/" + image}, **extra}


def add(options: dict[str, Any], expect: str | None = None) -> Step:
    return Step("blockdev-add", options, expect=expect)


def compress(name: str, file: Any, expect: str | None = None) -> Step:
    return add({"driver": "compress", "node-name": name, "file": file}, expect)


def write_step(node: str, offset: int, pattern: int, length: int) -> Step:
    return Step("query-version", None, compare_graph=False,
                after=guest_write(node, offset, pattern, length))


class Outcomes:
    """What each peer answered a guest write: "ok" or the errno (NBD's error numbers
    are the errno values for EIO, EINVAL and ENOTSUP)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def write(self, node: str, offset: int, pattern: int, length: int) -> Step:
        def hook(peer: Any) -> None:
            try:
                write(peer, node, offset, pattern, length)
            except OSError as exc:
                self.seen.append(f"errno {exc.errno}")
            except AssertionError as exc:          # the NBD client's refusal
                self.seen.append(str(exc).split(": ", 1)[1])
            else:
                self.seen.append("ok")
        return Step("query-version", None, compare_graph=False, after=hook)

    def agree(self) -> list[str]:
        pairs = list(zip(self.seen[::2], self.seen[1::2], strict=True))
        assert all(a == b for a, b in pairs), pairs
        return [a for a, _ in pairs]


def read_step(reads: Reads, node: str, offset: int, length: int) -> Step:
    return Step("query-version", None, compare_graph=False,
                after=reads.hook(node, offset, length))


def same_images(tmp_path: Path, *names: str) -> None:
    for name in names:
        qsd, eng = tmp_path / "qsd" / name, tmp_path / "engine" / name
        assert map_json(qsd) == map_json(eng), name
        assert compare(qsd, eng), name
        check(eng)


def l2_entries(path: Path, count: int) -> list[int]:
    """The first ``count`` entries of the first L2 table."""
    data = path.read_bytes()
    l1_offset = struct.unpack(">Q", data[40:48])[0]
    l2 = struct.unpack(">Q", data[l1_offset:l1_offset + 8])[0] & 0x00FF_FFFF_FFFF_FE00
    return list(struct.unpack(f">{count}Q", data[l2:l2 + 8 * count]))


COMPRESSED = 1 << 62


def test_children_compress_accepts_and_refuses(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        add({"driver": "raw", "node-name": "r", "file": {
            "driver": "file", "filename": "{dir}/r.raw"}}),
        compress("c0", "r", expect="error"),                    # raw cannot compress
        compress("c0", {"driver": "file", "filename": "{dir}/r.raw"}, expect="error"),
        compress("c0", {"driver": "null-co"}, expect="error"),
        compress("c0", "nope", expect="error"),
        Step("blockdev-add", {"driver": "compress", "node-name": "c0"}, expect="error"),
        add(qcow2("a", "a.qcow2")),
        add({"driver": "throttle", "node-name": "t", "throttle-group": "g", "file": "a"},
            expect="error"),
        Step("object-add", {"qom-type": "throttle-group", "id": "g"}),
        add({"driver": "throttle", "node-name": "t", "throttle-group": "g", "file": "a"}),
        compress("c0", "t", expect="ok"),                       # throttle passes them on
        compress("c1", "c0", expect="error"),                   # compress does not
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("blockdev-reopen", {"options": [{"driver": "compress", "node-name": "c0",
                                              "file": "t"}]}, expect="error"),
        Step("blockdev-del", {"node-name": "t"}, expect="error"),
        Step("blockdev-del", {"node-name": "c0"}, expect="ok"),
        compress("c2", qcow2("b", "small.qcow2"), expect="ok"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
    ])


def test_writes_land_compressed(tmp_path: Path) -> None:
    reads, outcomes = Reads(), Outcomes()
    run_scenario(tmp_path, images, [
        add(qcow2("a", "a.qcow2")),
        compress("c0", "a"),
        write_step("c0", 64 * KiB, 0x11, 64 * KiB),             # one whole cluster
        write_step("c0", 128 * KiB, 0x12, 64 * KiB),            # packed after it
        write_step("c0", 300 * KiB, 0x13, 8 * KiB),             # widened: zeros around it
        write_step("c0", 448 * KiB, 0x14, 192 * KiB),           # three clusters at once
        outcomes.write("c0", 32 * KiB, 0x15, 16 * KiB),         # allocated cluster: refused
        outcomes.write("c0", 900 * KiB, 0x17, 4 * KiB),
        write_step("a", 700 * KiB, 0x16, 4 * KiB),              # a plain write beside them
        read_step(reads, "c0", 0, MiB),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
    ])
    data = reads.agree()
    assert outcomes.agree() == ["errno 5", "ok"]
    assert data[64 * KiB:192 * KiB] == bytes([0x11]) * (64 * KiB) + bytes([0x12]) * (64 * KiB)
    assert data[296 * KiB:312 * KiB] == bytes(4 * KiB) + bytes([0x13]) * (8 * KiB) + bytes(
        4 * KiB)
    same_images(tmp_path, "a.qcow2")
    entries = l2_entries(tmp_path / "engine" / "a.qcow2", 10)
    assert [bool(e & COMPRESSED) for e in entries] == [
        False, True, True, False, True, False, False, True, True, True]
    assert l2_entries(tmp_path / "engine" / "a.qcow2", 16)[14] & COMPRESSED


def test_partial_writes_keep_what_the_cluster_held(tmp_path: Path) -> None:
    """A partial write through the filter reads the rest of the cluster through the
    filter (here: from the backing file) and writes the whole cluster compressed."""
    reads = Reads()
    run_scenario(tmp_path, images, [
        add(qcow2("back", "back.qcow2", **{"read-only": True})),
        add(qcow2("o", "over.qcow2", backing="back")),
        compress("c0", "o"),
        write_step("c0", 70 * KiB, 0x21, 1 * KiB),
        write_step("c0", 130 * KiB, 0x22, 100 * KiB),
        read_step(reads, "o", 0, MiB),
    ])
    data = reads.agree()
    assert data[70 * KiB:71 * KiB] == bytes([0x21]) * KiB
    assert data[64 * KiB:70 * KiB] == bytes([3]) * (6 * KiB)
    same_images(tmp_path, "over.qcow2")


def test_short_last_cluster_and_incompressible_data(tmp_path: Path) -> None:
    """An image whose size ends inside a cluster; random data that deflate cannot
    shrink is written as a normal cluster, as QEMU does."""
    noise = random.Random(5).randbytes(4 * KiB)

    def setup(d: Path) -> None:
        images(d)
        (d / "noise.bin").write_bytes(noise)

    reads = Reads()
    run_scenario(tmp_path, setup, [
        add(qcow2("s", "small.qcow2")),
        compress("c0", "s"),
        write_step("c0", 196 * KiB, 0x31, 4 * KiB),             # the last, short cluster
        write_step("c0", 0, 0x32, 4 * KiB),
        Step("query-version", None, compare_graph=False,
             after=lambda peer: write_data(peer, "c0", 8 * KiB, noise)),
        read_step(reads, "c0", 0, 200 * KiB),
    ])
    data = reads.agree()
    assert data[8 * KiB:12 * KiB] == noise
    same_images(tmp_path, "small.qcow2")
    entries = l2_entries(tmp_path / "engine" / "small.qcow2", 3)
    assert [bool(e & COMPRESSED) for e in entries] == [True, False, False]
    assert os.path.getsize(tmp_path / "engine" / "small.qcow2") > 0

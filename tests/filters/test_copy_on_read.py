"""``copy-on-read`` filters against qemu-storage-daemon 7.2: guest reads through the
filter copy into its child what the child does not allocate (whole clusters, zero runs
as zero clusters), ``bottom`` limits the copying to the chain above it and freezes the
links down to it; the images are compared with ``qemu-img map``/``check``/``compare``
afterwards (cf. QEMU's iotests 197 and 216)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.guest import Reads, guest_write
from tests.support.qemu import check, compare, create, map_json, qemu_io

pytestmark = pytest.mark.qemu

KiB = 1024
MiB = 1 << 20


def chain(d: Path) -> None:
    """base <- mid <- top, each with data of its own, a zero cluster in mid."""
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 1 0 64k", "write -P 4 512k 64k",
            "write -P 5 960k 64k")
    create(d / "mid.qcow2", MiB, backing="base.qcow2", backing_fmt="qcow2")
    qemu_io(d / "mid.qcow2", "write -P 2 128k 64k", "write -z 192k 64k",
            "write -P 6 448k 8k")
    create(d / "top.qcow2", MiB, backing="mid.qcow2", backing_fmt="qcow2")
    qemu_io(d / "top.qcow2", "write -P 3 256k 64k")
    create(d / "lone.qcow2", MiB)
    create(d / "small.qcow2", "640k", options="cluster_size=4096")


def qcow2(name: str, image: str, **extra: Any) -> Step:
    return Step("blockdev-add", {"driver": "qcow2", "node-name": name,
                                 "file": {"driver": "file", "filename": "{dir}/" + image},
                                 **extra})


def cor(name: str, file: Any, expect: str | None = None, **extra: Any) -> Step:
    return Step("blockdev-add", {"driver": "copy-on-read", "node-name": name, "file": file,
                                 **extra}, expect=expect)


def nodes() -> list[Step]:
    return [qcow2("base", "base.qcow2"), qcow2("mid", "mid.qcow2", backing="base"),
            qcow2("top", "top.qcow2", backing="mid")]


def reopen_top(expect: str | None = None, **extra: Any) -> Step:
    return Step("blockdev-reopen", {"options": [{
        "driver": "qcow2", "node-name": "top", "backing": "mid",
        "file": {"driver": "file", "filename": "{dir}/top.qcow2"}, **extra}]}, expect=expect)


def same_images(tmp_path: Path, *images: str) -> None:
    """After both peers closed: every image equal in content, allocation and health."""
    for image in images:
        qsd, eng = tmp_path / "qsd" / image, tmp_path / "engine" / image
        assert map_json(qsd) == map_json(eng), image
        assert compare(qsd, eng), image
        check(eng)


def read_step(reads: Reads, node: str, offset: int, length: int) -> Step:
    return Step("query-version", None, compare_graph=False,
                after=reads.hook(node, offset, length))


def test_reads_copy_up_whole_clusters(tmp_path: Path) -> None:
    reads = Reads()
    run_scenario(tmp_path, chain, [
        *nodes(),
        cor("c0", "top"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        read_step(reads, "c0", 70 * KiB, 4 * KiB),         # inside base's cluster 1: zeros
        read_step(reads, "c0", 130 * KiB, 100 * KiB),      # mid's data, then its zeros
        read_step(reads, "c0", 448 * KiB, 4 * KiB),        # mid's partial cluster
        read_step(reads, "c0", 250 * KiB, 20 * KiB),       # crosses into top's own data
        read_step(reads, "c0", 0, 8 * KiB),                # base's data
        Step("query-version", None, compare_graph=False,
             after=guest_write("c0", 600 * KiB, 0x77, 4 * KiB)),
        read_step(reads, "c0", 0, MiB),
        Step("blockdev-del", {"node-name": "c0"}, expect="ok"),
    ])
    reads.agree()
    same_images(tmp_path, "top.qcow2", "mid.qcow2", "base.qcow2")


def test_reads_of_an_image_without_backing(tmp_path: Path) -> None:
    reads = Reads()
    run_scenario(tmp_path, chain, [
        qcow2("lone", "lone.qcow2"),
        cor("c1", "lone"),
        cor("c2", {"driver": "qcow2", "node-name": "inline",
                   "file": {"driver": "file", "filename": "{dir}/small.qcow2"}}),
        read_step(reads, "c1", 100 * KiB, 10 * KiB),
        read_step(reads, "c2", 5000, 3000),
        read_step(reads, "c2", 600 * KiB, 40 * KiB),       # the last cluster, partly
        Step("blockdev-del", {"node-name": "c2"}, expect="ok"),
    ])
    reads.agree()
    same_images(tmp_path, "lone.qcow2", "small.qcow2")


def test_bottom_limits_copying_and_freezes_the_chain(tmp_path: Path) -> None:
    reads = Reads()
    run_scenario(tmp_path, chain, [
        *nodes(),
        Step("object-add", {"qom-type": "throttle-group", "id": "g"}),
        Step("blockdev-add", {"driver": "throttle", "node-name": "thr", "file": "base",
                              "throttle-group": "g"}),
        cor("c0", "top", bottom="nope"),
        cor("c0", "top", bottom="thr"),
        cor("c0", "top", bottom="mid", expect="ok"),
        reopen_top(backing=None),                           # frozen
        reopen_top(**{"read-only": True}),
        Step("blockdev-reopen", {"options": [{"driver": "copy-on-read", "node-name": "c0",
                                              "file": "top", "bottom": "mid"}]}),
        Step("blockdev-del", {"node-name": "mid"}),
        read_step(reads, "c0", 0, MiB),
        Step("blockdev-del", {"node-name": "c0"}, expect="ok"),
        reopen_top(backing=None, expect="ok"),                    # thawed
        cor("c3", "top", bottom="top", expect="ok"),
        cor("c4", "c3", bottom="top", expect="error"),          # c3's link is frozen
        cor("c4", "c3", expect="ok"),
        Step("blockdev-del", {"node-name": "c4"}, expect="ok"),
        Step("blockdev-del", {"node-name": "c3"}, expect="ok"),
    ])
    reads.agree()
    same_images(tmp_path, "top.qcow2", "mid.qcow2")


def test_bottom_in_a_chain_with_a_filter(tmp_path: Path) -> None:
    reads = Reads()
    run_scenario(tmp_path, chain, [
        Step("object-add", {"qom-type": "throttle-group", "id": "g"}),
        qcow2("base", "base.qcow2"),
        qcow2("mid", "mid.qcow2", backing="base"),
        Step("blockdev-add", {"driver": "throttle", "node-name": "thr", "file": "mid",
                              "throttle-group": "g"}),
        qcow2("top", "top.qcow2", backing="thr"),
        cor("c0", "top", bottom="base"),
        read_step(reads, "c0", 0, MiB),
        Step("blockdev-del", {"node-name": "c0"}, expect="ok"),
    ])
    reads.agree()
    same_images(tmp_path, "top.qcow2")

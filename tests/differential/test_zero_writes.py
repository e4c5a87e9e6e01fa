"""Zero writes on qcow2, against QEMU 7.2: allocation, zero flags, content.

QEMU cuts a zero write at cluster boundaries; a piece covering part of a cluster
zeroes the whole cluster (zero flag) only when the rest of the cluster already reads
as zeros through the whole chain and the cluster holds no data of its own, and is
written as ordinary zero data otherwise. ``may-unmap`` (``-u``) gives allocated clusters
back; version 2 images, without a zero flag, discard (no backing) or write zeros
(backing). Writes of zero data are data unless the node has ``detect-zeroes``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.differential.qemu_io_diff import run_both, top_options
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

SIZE = 1 << 20


def plain(d: Path) -> None:
    create(d / "top.qcow2", SIZE)


def allocated(d: Path) -> None:
    """Clusters 0 and 1 hold data; cluster 3 is a zero cluster with its host cluster."""
    create(d / "top.qcow2", SIZE)
    qemu_io(d / "top.qcow2", "write -P 0x11 0 128k", "write -P 0x12 192k 64k",
            "write -z 192k 64k")


def backed(d: Path) -> None:
    """A base with data at the start of cluster 0 and in cluster 2 (bytes 8k..12k), a
    zero cluster 4 and nothing else; an empty overlay."""
    create(d / "base.qcow2", SIZE)
    qemu_io(d / "base.qcow2", "write -P 0x22 0 4k", "write -P 0x23 136k 4k",
            "write -z 256k 64k")
    create(d / "top.qcow2", SIZE, backing="base.qcow2")


def short_backing(d: Path) -> None:
    """A base half as large as its overlay, with data in its last cluster."""
    create(d / "base.qcow2", SIZE // 2)
    qemu_io(d / "base.qcow2", "write -P 0x24 448k 64k")
    create(d / "top.qcow2", SIZE, backing="base.qcow2")


def odd_size(d: Path) -> None:
    """An image whose last cluster is short (1 MiB + 1.5 KiB)."""
    create(d / "top.qcow2", SIZE + 1536)


def version2(d: Path) -> None:
    create(d / "top.qcow2", SIZE, options="compat=0.10")
    qemu_io(d / "top.qcow2", "write -P 0x31 0 128k", "write -c -P 0x32 256k 64k")


def version2_backed(d: Path) -> None:
    create(d / "base.qcow2", SIZE, options="compat=0.10")
    qemu_io(d / "base.qcow2", "write -P 0x33 0 64k")
    create(d / "top.qcow2", SIZE, backing="base.qcow2", options="compat=0.10")


def small_clusters(d: Path) -> None:
    create(d / "top.qcow2", SIZE, options="cluster_size=512")
    qemu_io(d / "top.qcow2", "write -P 0x41 0 1536")


ZERO_COMMANDS = [
    "write -q -z 4k 4k",           # inside an unallocated cluster
    "write -q -z 60k 8k",          # across a cluster boundary
    "write -q -z 96k 96k",         # head, a whole cluster, tail
    "write -q -z 0 64k",           # one whole cluster
    "write -q -z 320k 1k",
    "write -q -z -u 324k 1k",
    "write -q -z 1020k 4k",        # the last cluster, up to the end
]


@pytest.mark.parametrize("setup", [plain, allocated, backed, short_backing, version2,
                                   version2_backed, small_clusters],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("unmap", ["", "-u "], ids=["keep", "unmap"])
def test_zero_writes_of_every_shape(tmp_path: Path, setup, unmap: str) -> None:
    commands = [c.replace("-z ", "-z " + unmap, 1) for c in ZERO_COMMANDS]
    run_both(tmp_path, setup, top_options(), commands)


def test_zero_writes_over_data_and_zero_clusters(tmp_path: Path) -> None:
    run_both(tmp_path, allocated, top_options(), [
        "write -q -z 4k 4k",             # data cluster: zeros written in place
        "write -q -z 196k 4k",           # zero cluster with a host cluster: stays zero
        "write -q -z -u 200k 4k",        # ... given back with unmap
        "write -q -z -u 64k 64k",        # a whole data cluster given back
        "write -q -z 60k 8k",
    ])


def test_partial_zero_writes_over_a_backing_file(tmp_path: Path) -> None:
    run_both(tmp_path, backed, top_options(), [
        "write -q -z 8k 4k",           # the base has data at 0..4k of this cluster
        "write -q -z 68k 4k",          # nothing below: a zero cluster
        "write -q -z 128k 4k",         # data below in the same cluster (136k)
        "write -q -z 260k 4k",         # a zero cluster below
        "write -q -z 600k 4k",
    ], images=("top.qcow2", "base.qcow2"))


def test_partial_zero_writes_past_a_short_backing_file(tmp_path: Path) -> None:
    run_both(tmp_path, short_backing, top_options(), [
        "write -q -z 452k 4k", "write -q -z 516k 4k", "write -q -z 1000k 4k",
    ], images=("top.qcow2", "base.qcow2"))


def test_zero_writes_at_a_short_last_cluster(tmp_path: Path) -> None:
    run_both(tmp_path, odd_size, top_options(), [
        "write -q -z 1M 512", "write -q -z 1024k 1536", "write -q -P 7 1020k 2k",
        "write -q -z 1022k 2560",
    ])


@pytest.mark.parametrize("detect", ["off", "on", "unmap"])
def test_zero_data_and_detect_zeroes(tmp_path: Path, detect: str) -> None:
    extra = {"detect-zeroes": detect}
    if detect == "unmap":
        extra["discard"] = "unmap"
    run_both(tmp_path, allocated, top_options(**extra), [
        "write -q -P 0 4k 4k",           # zero data inside a data cluster
        "write -q -P 0 512k 4k",         # ... inside an unallocated cluster
        "write -q -P 0 64k 64k",         # a whole data cluster of zeros
        "write -q -P 0 640k 128k",       # whole unallocated clusters of zeros
        "write -q -P 5 900k 4k",         # data that is not zero
    ])


DISCARDS = [
    "discard -q 4k 4k",            # part of a cluster: ignored
    "discard -q 0 64k",            # a whole data cluster
    "discard -q 96k 96k",          # head ignored, one whole cluster
    "discard -q 256k 64k",
    "discard -q 576k 64k",         # nothing allocated
    "write -q -P 9 640k 64k",      # takes a cluster given back
    "discard -q 1020k 4k",
]


@pytest.mark.parametrize("setup", [allocated, backed, version2, version2_backed, odd_size],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("discard", ["ignore", "unmap"])
def test_discards(tmp_path: Path, setup, discard: str) -> None:
    commands = DISCARDS + (["discard -q 1M 1536"] if setup is odd_size else [])
    run_both(tmp_path, setup, top_options(discard=discard), commands)

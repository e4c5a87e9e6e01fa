"""Behaviours seen to differ from QEMU 7.2, each now compared with qemu-storage-daemon:
which user a refused deletion names, ``block_resize``, image creation options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, image_fields, run_jobs
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20


def qcow2(name: str, image: str, **extra: Any) -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": name,
                                "file": {"driver": "file", "node-name": f"{name}-file",
                                         "filename": "{dir}/" + image}, **extra})


def shared_base(d: Path) -> None:
    create(d / "base.qcow2", 2 * MiB)
    qemu_io(d / "base.qcow2", "write -P 1 0 1M")
    for name in ("ov1", "ov2", "ov3"):
        create(d / f"{name}.qcow2", 2 * MiB, backing=str(d / "base.qcow2"))


def test_a_refused_deletion_names_the_newest_user(tmp_path: Path) -> None:
    run_jobs(tmp_path, shared_base, [
        qcow2("base", "base.qcow2", **{"read-only": True}),
        qcow2("ov1", "ov1.qcow2", backing="base"),
        qcow2("ov2", "ov2.qcow2", backing="base"),
        Cmd("blockdev-del", {"node-name": "base"}),
        Cmd("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "ov1", "file": "ov1-file", "backing": None}]}),
        Cmd("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "ov1", "file": "ov1-file", "backing": "base"}]}),
        Cmd("blockdev-del", {"node-name": "base"}),
        Cmd("block-stream", {"job-id": "s0", "device": "ov2", "auto-finalize": False},
            compare_graph=False),
        WaitStatus("s0", "pending"),
        Cmd("blockdev-del", {"node-name": "base"}),
        qcow2("ov3", "ov3.qcow2", backing="base"),
        Cmd("blockdev-del", {"node-name": "base"}),
        Cmd("blockdev-del", {"node-name": "ov2"}),
        Cmd("job-finalize", {"id": "s0"}, compare_graph=False),
        WaitStatus("s0", "null"),
        Cmd("blockdev-del", {"node-name": "base"}),
    ])


SIZES = Cmd("query-named-block-nodes", {"flat": True},
            project=image_fields("virtual-size", "actual-size-is-not-compared"))


def resize_setup(d: Path) -> None:
    create(d / "disk.qcow2", 2 * MiB)
    qemu_io(d / "disk.qcow2", "write -P 5 0 2M")
    create(d / "small.qcow2", MiB, options="cluster_size=512")
    create(d / "ro.qcow2", MiB)
    create(d / "disk.raw", 2 * MiB, fmt="raw")
    qemu_io(d / "disk.raw", "write -P 6 0 2M", fmt="raw")


def test_block_resize(tmp_path: Path) -> None:
    run_jobs(tmp_path, resize_setup, [
        qcow2("disk", "disk.qcow2"),
        Cmd("block_resize", {"node-name": "disk", "size": 4 * MiB}),
        SIZES,
        Cmd("block_resize", {"node-name": "disk", "size": 3 * MiB + 512}),
        Cmd("block_resize", {"node-name": "disk", "size": MiB}),
        SIZES,
        Cmd("block_resize", {"node-name": "disk", "size": -1}),
        Cmd("block_resize", {"node-name": "nosuch", "size": MiB}),
        Cmd("block_resize", {"device": "nosuch", "size": MiB}),
        Cmd("block_resize", {"size": MiB}),
        Cmd("block_resize", {"node-name": "disk-file", "size": MiB}),
        qcow2("small", "small.qcow2"),
        Cmd("block_resize", {"node-name": "small", "size": 200 * MiB}),
        SIZES,
        Cmd("blockdev-add", {"driver": "raw", "node-name": "r",
                             "file": {"driver": "file", "filename": "{dir}/disk.raw"}}),
        Cmd("block_resize", {"node-name": "r", "size": 3 * MiB}),
        Cmd("blockdev-add", {"driver": "raw", "node-name": "w", "size": MiB,
                             "file": {"driver": "file", "filename": "{dir}/disk.raw",
                                      "locking": "off"}}),
        Cmd("block_resize", {"node-name": "w", "size": 2 * MiB}),
        SIZES,
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "ro", "read-only": True,
                             "file": {"driver": "file", "filename": "{dir}/ro.qcow2"}}),
        Cmd("block_resize", {"node-name": "ro", "size": 2 * MiB}),
        Cmd("block-stream", {"job-id": "s0", "device": "disk", "auto-finalize": False},
            compare_graph=False),
        WaitStatus("s0", "pending"),
        Cmd("block_resize", {"node-name": "disk", "size": 2 * MiB}),
        Cmd("block_resize", {"device": "s0", "size": 2 * MiB}),
        Cmd("job-finalize", {"id": "s0"}, compare_graph=False),
        WaitStatus("s0", "null"),
    ], ("disk.qcow2", "small.qcow2", "disk.raw"))


def test_blockdev_create_extended_l2_and_preallocation(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        for name in ("ext", "meta", "fal", "full", "f1", "f2", "f3", "f4"):
            create(d / f"{name}.img", 0, fmt="raw")

    steps: list[Any] = []
    jobs = [("file", "f1", {"preallocation": "falloc"}),
            ("file", "f2", {"preallocation": "full"}),
            ("file", "f3", {"preallocation": "metadata"}),
            ("qcow2", "ext", {"extended-l2": True}),
            ("qcow2", "meta", {"preallocation": "metadata"}),
            ("qcow2", "fal", {"preallocation": "falloc", "cluster-size": 4096}),
            ("qcow2", "full", {"preallocation": "full"})]
    for i, (driver, name, extra) in enumerate(jobs):
        if driver == "file":
            opts = {"driver": "file", "filename": "{dir}/" + f"{name}.img", "size": MiB}
        else:
            opts = {"driver": "qcow2", "size": MiB,
                    "file": {"driver": "file", "filename": "{dir}/" + f"{name}.img"}}
        # QEMU holds a temporary node while it formats: the graph compares afterwards
        steps += [Cmd("blockdev-create", {"job-id": f"j{i}", "options": {**opts, **extra}},
                      compare_graph=False),
                  WaitStatus(f"j{i}", "concluded")]
    steps += [Cmd("query-jobs", compare_return=True), qcow2("m", "meta.img"), SIZES]
    run_jobs(tmp_path, setup, steps, ("ext.img", "meta.img", "fal.img", "full.img",
                                      "f1.img", "f2.img"))

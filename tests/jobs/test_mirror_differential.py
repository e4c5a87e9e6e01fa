"""Mirror jobs (``drive-mirror``, ``blockdev-mirror``) against qemu-storage-daemon 7.2.

Each scenario runs on both peers with its own copy of the same images; the replies and
error texts, the graph (with the ``mirror_top`` filter while the job runs, after the
pivot or the cancel), the event sequence with len/offset, the header fields, the
allocation, the guest content and ``qemu-img check`` of every image must agree; and the
target must read as the source did (``qemu-img compare``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support.qemu import compare, create, qemu_io

pytestmark = pytest.mark.qemu


def chain(d: Path) -> None:
    """base <- top (8 MiB) with data in both layers, a zeroed range, and an empty target."""
    create(d / "base.qcow2", "8M")
    qemu_io(d / "base.qcow2", "write -P 1 0 3M", "write -P 4 6M 1M")
    create(d / "top.qcow2", "8M", backing=str(d / "base.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 3 1M 1M", "write -z 6M 256k")
    create(d / "target.qcow2", "8M")
    create(d / "small.qcow2", "4M")


def add(name: str, file: str, **extra: object) -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": name,
                                "file": {"driver": "file", "filename": "{dir}/" + file},
                                **extra})


def jobs_fields(value: Any) -> Any:
    """query-block-jobs without ``busy`` (whether the job is inside a request is timing)."""
    return [{k: v for k, v in job.items() if k != "busy"} for job in value]


def test_blockdev_mirror_full_and_pivot(tmp_path: Path) -> None:
    result = run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        add("target", "target.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "top", "target": "target",
                                "sync": "full"}, compare_graph=False),
        WaitStatus("m0", "ready"),
        Cmd("query-block-jobs", project=jobs_fields),
        Cmd("job-complete", {"id": "m0"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "base.qcow2", "target.qcow2"))
    for d in result.dirs.values():
        assert compare(d / "top.qcow2", d / "target.qcow2")


def test_blockdev_mirror_filter_node_and_manual_finalize(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        add("target", "target.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "top", "target": "target",
                                "sync": "full", "filter-node-name": "mt",
                                "auto-finalize": False, "auto-dismiss": False}),
        WaitStatus("m0", "ready"),
        Cmd("block-job-complete", {"device": "m0"}, compare_graph=False),
        WaitStatus("m0", "pending"),
        Cmd("job-finalize", {"id": "m0"}, compare_graph=False),
        WaitStatus("m0", "concluded", compare_graph=False),
        Cmd("job-dismiss", {"id": "m0"}),
    ], ("top.qcow2", "target.qcow2"))


@pytest.mark.parametrize("sync", ["full", "top", "none"])
def test_drive_mirror_creates_the_target(tmp_path: Path, sync: str) -> None:
    """absolute-paths: the target is created (backing: none, the source's backing, the
    source) and, once complete, replaces the source with that backing attached."""
    result = run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": sync,
                             "target": "{dir}/new.qcow2", "node-name": "new"},
            compare_graph=False),
        WaitStatus("m0", "ready"),
        Cmd("block-job-complete", {"device": "m0"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "base.qcow2", "new.qcow2"))
    if sync != "none":      # none copies only what is written during the job
        for d in result.dirs.values():
            assert compare(d / "top.qcow2", d / "new.qcow2")


def test_drive_mirror_existing_opens_its_backing_at_the_end(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        chain(d)
        create(d / "ovl.qcow2", "8M", backing=str(d / "base.qcow2"))

    run_jobs(tmp_path, setup, [
        add("top", "top.qcow2"),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "top",
                             "mode": "existing", "target": "{dir}/ovl.qcow2",
                             "node-name": "ovl"}, compare_graph=False),
        WaitStatus("m0", "ready"),
        Cmd("job-complete", {"id": "m0"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "ovl.qcow2"))


def test_soft_cancel_after_ready_keeps_the_source(tmp_path: Path) -> None:
    result = run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        add("target", "target.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "top", "target": "target",
                                "sync": "full"}, compare_graph=False),
        WaitStatus("m0", "ready"),
        Cmd("block-job-cancel", {"device": "m0"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "target.qcow2"))
    for d in result.dirs.values():
        assert compare(d / "top.qcow2", d / "target.qcow2")


def test_forced_cancel_after_ready(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        add("target", "target.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "top", "target": "target",
                                "sync": "full"}, compare_graph=False),
        WaitStatus("m0", "ready"),
        Cmd("block-job-cancel", {"device": "m0", "force": True}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "target.qcow2"))


def test_cancel_while_running_aborts(tmp_path: Path) -> None:
    """speed=1 holds the job after its first chunk: the graph with the filter compares."""
    run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        add("target", "target.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "top", "target": "target",
                                "sync": "full", "speed": 1}),
        WaitStatus("m0", "running"),
        Cmd("query-named-block-nodes", {"flat": True}, compare_graph=False),
        Cmd("job-complete", {"id": "m0"}, compare_graph=False),
        Cmd("block-job-cancel", {"device": "m0"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2",), compare_progress=False, compare_allocation=False)


def test_replaces_names_the_node_under_a_filter(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        Cmd("blockdev-add", {"driver": "copy-on-read", "node-name": "cor", "file": "top"}),
        add("target", "target.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "cor", "target": "target",
                                "sync": "full", "replaces": "top"}, compare_graph=False),
        WaitStatus("m0", "ready"),
        Cmd("job-complete", {"id": "m0"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "target.qcow2"))


def test_target_of_another_size_fails_the_job(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add("top", "top.qcow2"),
        add("small", "small.qcow2"),
        Cmd("blockdev-mirror", {"job-id": "m0", "device": "top", "target": "small",
                                "sync": "full"}, compare_graph=False),
        WaitStatus("m0", "null"),
    ], ("top.qcow2", "small.qcow2"))


REFUSALS: list[tuple[str, dict[str, Any]]] = [
    ("blockdev-mirror", {"device": "top", "target": "top", "sync": "full", "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "nowhere", "sync": "full"}),
    ("blockdev-mirror", {"device": "nowhere", "target": "target", "sync": "full"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "bitmap",
                         "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "granularity": 1000, "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "granularity": 256, "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "buf-size": -1, "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "replaces": "nowhere", "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "replaces": "base", "job-id": "j"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "job-id": "j", "filter-node-name": "top"}),
    ("blockdev-mirror", {"device": "top", "target": "target", "sync": "full",
                         "job-id": "#bad"}),
    ("blockdev-mirror", {"device": "top", "target": "base", "sync": "full", "job-id": "j"}),
    ("blockdev-mirror", {"device": "base", "target": "target", "sync": "full",
                         "job-id": "j"}),
    ("drive-mirror", {"device": "top", "target": "{dir}/x.qcow2", "sync": "full",
                      "replaces": "top", "job-id": "j"}),
    ("drive-mirror", {"device": "top", "target": "{dir}/missing.qcow2", "sync": "full",
                      "mode": "existing", "job-id": "j"}),
    ("drive-mirror", {"device": "top", "target": "{dir}/x.qcow2", "sync": "full",
                      "format": "vmdk-nope", "job-id": "j"}),
    ("drive-mirror", {"device": "top", "target": "{dir}/x.qcow2", "sync": "full",
                      "node-name": "top", "job-id": "j"}),
]


def test_refusals_match(tmp_path: Path) -> None:
    """Every refusal with QEMU's class and text, and the graph unchanged after each."""
    steps: list[Any] = [
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "base", "read-only": True,
                             "file": {"driver": "file", "filename": "{dir}/base.qcow2"}}),
        add("top", "top.qcow2", backing="base"),
        add("target", "target.qcow2"),
        add("small", "small.qcow2"),
    ]
    steps += [Cmd(command, args) for command, args in REFUSALS]
    result = run_jobs(tmp_path, chain, steps, ("top.qcow2", "target.qcow2"))
    for (command, args), replies in zip(REFUSALS, result.replies[4:], strict=True):
        assert all("error" in r for r in replies), (command, args, replies)

"""Commands that create or truncate a file, aimed at a file in use: refused with QEMU's
text before anything is written, every file byte for byte as it was.

Each scenario runs on qemu-storage-daemon 7.2 and on the engine; before the command
the bytes of every file in each peer's directory are saved, after it (after its job
ended, for ``blockdev-create``) they must be the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, FilesSaved, FilesUnchanged, WaitStatus, named_chain, run_jobs
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

IMAGES = ("top.qcow2", "mid.qcow2", "base.qcow2")


def chain(d: Path) -> None:
    create(d / "base.qcow2", "4M")
    qemu_io(d / "base.qcow2", "write -P 1 0 1M")
    create(d / "mid.qcow2", "4M", backing=str(d / "base.qcow2"))
    qemu_io(d / "mid.qcow2", "write -P 2 1M 1M")
    create(d / "top.qcow2", "4M", backing=str(d / "mid.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 3 2M 1M")


OPEN_TOP = Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                "file": {"driver": "file", "filename": "{dir}/top.qcow2",
                                         "node-name": "top-file"}})


def refused(command: str, arguments: dict[str, Any]) -> list[Any]:
    return [FilesSaved(), Cmd(command, arguments), FilesUnchanged()]


def snapshot_into(target: str, **extra: Any) -> list[Any]:
    return refused("blockdev-snapshot-sync", {"node-name": "top", "snapshot-file": target,
                                              "snapshot-node-name": "snap", **extra})


@pytest.mark.parametrize("target", [
    "{dir}/base.qcow2",          # the bottom of the chain, open read-only
    "{dir}/mid.qcow2",           # an intermediate layer
    "{dir}/top.qcow2",           # the active image's own file, by the name it was opened by
    "{dir}/./top.qcow2",         # ... and by another name for the same file
    "file:{dir}/base.qcow2",     # a file: prefix
])
def test_snapshot_sync_into_a_file_in_use(tmp_path: Path, target: str) -> None:
    run_jobs(tmp_path, chain, [OPEN_TOP, *snapshot_into(target)], IMAGES)


def test_snapshot_sync_checks_before_writing(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        OPEN_TOP,
        *snapshot_into("{dir}/new.raw", format="raw"),
        *snapshot_into("{dir}/new.qcow2", format="foo"),
        *snapshot_into("foo:bar"),
        *snapshot_into("{dir}/nodir/new.qcow2"),
        *refused("blockdev-snapshot-sync", {"node-name": "top",
                                            "snapshot-file": "{dir}/new.qcow2"}),
        *refused("blockdev-snapshot-sync", {"node-name": "nonexist",
                                            "snapshot-file": "{dir}/base.qcow2",
                                            "snapshot-node-name": "s"}),
        *snapshot_into("{dir}/base.qcow2", **{"snapshot-node-name": "top"}),
    ], IMAGES)


def test_transaction_that_would_overwrite_a_file_in_use(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        chain(d)
        create(d / "other.qcow2", "4M")

    run_jobs(tmp_path, setup, [
        OPEN_TOP,
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "other",
                             "file": {"driver": "file", "filename": "{dir}/other.qcow2"}}),
        *refused("transaction", {"actions": [
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "other", "snapshot-file": "{dir}/other-snap.qcow2",
                "snapshot-node-name": "os"}},
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "top", "snapshot-file": "{dir}/mid.qcow2",
                "snapshot-node-name": "snap"}}]}),
    ], (*IMAGES, "other.qcow2"))


def test_blockdev_create_on_a_file_in_use(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        OPEN_TOP,
        FilesSaved(),
        Cmd("blockdev-create", {"job-id": "c0", "options": {
            "driver": "file", "filename": "{dir}/base.qcow2", "size": 0}}),
        WaitStatus("c0", "concluded"),
        Cmd("blockdev-create", {"job-id": "c1", "options": {
            "driver": "file", "filename": "{dir}/top.qcow2", "size": 1 << 20}}),
        WaitStatus("c1", "concluded"),
        Cmd("blockdev-create", {"job-id": "c2", "options": {
            "driver": "qcow2", "size": 1 << 20,
            "file": {"driver": "file", "filename": "{dir}/mid.qcow2"}}}),
        WaitStatus("c2", "concluded"),
        Cmd("blockdev-create", {"job-id": "c3", "options": {
            "driver": "qcow2", "size": 1 << 20, "file": "top-file"}}),
        WaitStatus("c3", "concluded"),
        Cmd("query-jobs", compare_return=True),
        FilesUnchanged(),
    ], IMAGES)


def test_blockdev_create_checks_options_before_writing(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        chain(d)
        create(d / "spare.qcow2", "4M")

    options: list[dict[str, Any]] = [
        {"size": 1000},
        {"size": 1 << 20, "cluster-size": 3000},
        {"size": 1 << 20, "backing-fmt": "qcow2"},
        {"size": 1 << 20, "version": "v2", "extended-l2": True},
        {"size": 1 << 20, "version": "v2", "lazy-refcounts": True},
        {"size": 1 << 20, "refcount-bits": 3},
        {"size": 1 << 20, "version": "v2", "refcount-bits": 8},
        {"size": 1 << 20, "backing-file": "{dir}/base.qcow2", "preallocation": "metadata"},
        {"size": 1 << 20, "extended-l2": True, "cluster-size": 4096},
    ]
    steps: list[Any] = [
        Cmd("blockdev-add", {"driver": "file", "node-name": "spare",
                             "filename": "{dir}/spare.qcow2"}),
        FilesSaved()]
    for i, extra in enumerate(options):
        steps += [Cmd("blockdev-create", {"job-id": f"j{i}", "options": {
                      "driver": "qcow2", "file": "spare", **extra}}),
                  WaitStatus(f"j{i}", "concluded")]
    steps += [Cmd("query-jobs", compare_return=True), FilesUnchanged()]
    run_jobs(tmp_path, setup, steps, ("spare.qcow2",))


def test_block_resize_of_a_file_in_use(tmp_path: Path) -> None:
    """``block_resize`` truncates: aimed at a layer another node reads through, at the
    file under a format, at a read-only node or at a layer a job holds, it is refused
    with QEMU's text and leaves every file as it was."""
    result = run_jobs(tmp_path, chain, [
        *named_chain(),
        Cmd("blockdev-add", {"driver": "raw", "node-name": "peek", "read-only": True,
                             "file": {"driver": "file", "filename": "{dir}/top.qcow2"}}),
        *refused("block_resize", {"node-name": "mid", "size": 1 << 20}),
        *refused("block_resize", {"node-name": "base", "size": 8 << 20}),
        *refused("block_resize", {"node-name": "top-file", "size": 1 << 20}),
        *refused("block_resize", {"node-name": "peek", "size": 1 << 20}),
        Cmd("block-stream", {"job-id": "s0", "device": "top", "auto-finalize": False},
            compare_graph=False),
        WaitStatus("s0", "pending"),
        *refused("block_resize", {"node-name": "top", "size": 1 << 20}),
        Cmd("job-finalize", {"id": "s0"}, compare_graph=False),
        WaitStatus("s0", "null"),
    ], IMAGES)
    resizes = [r for r in result.replies if r and "error" in r[0]]
    assert len(resizes) == 5, resizes

"""External snapshots and transactions against qemu-storage-daemon 7.2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs, without_actual_size
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu


def images(d: Path) -> None:
    create(d / "base.qcow2", "8M")
    qemu_io(d / "base.qcow2", "write -P 7 1M 2M")
    create(d / "ov.qcow2", "8M")


def add(name: str, file: str, **extra: object) -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": name,
                                "file": {"driver": "file", "filename": "{dir}/" + file},
                                **extra})


def test_blockdev_snapshot_checks_and_effect(tmp_path: Path) -> None:
    run_jobs(tmp_path, images, [
        add("base", "base.qcow2"),
        add("ov", "ov.qcow2", backing=None),
        Cmd("blockdev-snapshot", {"node": "nonexist", "overlay": "ov"}),
        Cmd("blockdev-snapshot", {"node": "base", "overlay": "nonexist"}),
        Cmd("blockdev-snapshot", {"node": "base", "overlay": "base"}),
        Cmd("blockdev-snapshot", {"node": "base", "overlay": "ov"}),
        Cmd("blockdev-snapshot", {"node": "base", "overlay": "ov"}),
        Cmd("query-named-block-nodes", project=without_actual_size),
    ])


def test_snapshot_sync_and_stream_back(tmp_path: Path) -> None:
    """An overlay of a node without users vanishes (the file stays); a backing node is busy."""
    run_jobs(tmp_path, images, [
        add("base", "base.qcow2"),
        Cmd("blockdev-snapshot-sync", {"node-name": "base",
                                       "snapshot-file": "{dir}/s1.qcow2"}),
        Cmd("blockdev-snapshot-sync", {"node-name": "nonexist", "snapshot-file": "{dir}/x",
                                       "snapshot-node-name": "s"}),
        Cmd("blockdev-snapshot-sync", {"node-name": "base", "snapshot-file": "{dir}/x",
                                       "snapshot-node-name": "base"}),
        Cmd("blockdev-snapshot-sync", {"node-name": "base", "snapshot-file": "{dir}/s1.qcow2",
                                       "snapshot-node-name": "s1"}),
        add("top", "ov.qcow2", backing="base"),
        Cmd("blockdev-snapshot-sync", {"node-name": "base", "snapshot-file": "{dir}/s2.qcow2",
                                       "snapshot-node-name": "s2"}),
        Cmd("blockdev-del", {"node-name": "s2"}),
        Cmd("block-stream", {"job-id": "j", "device": "top"}, compare_graph=False),
        WaitStatus("j", "null"),
    ], ("s1.qcow2", "ov.qcow2"))


def test_transaction_all_or_nothing(tmp_path: Path) -> None:
    run_jobs(tmp_path, images, [
        add("base", "base.qcow2"),
        add("ov", "ov.qcow2", backing=None),
        Cmd("transaction", {"actions": []}),
        Cmd("transaction", {"actions": [
            {"type": "blockdev-snapshot", "data": {"node": "base", "overlay": "ov"}},
            {"type": "abort", "data": {}}]}),
        Cmd("transaction", {"actions": [
            {"type": "blockdev-snapshot", "data": {"node": "base", "overlay": "ov"}},
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "nonexist", "snapshot-file": "{dir}/n.qcow2",
                "snapshot-node-name": "n"}}]}),
        Cmd("transaction", {"actions": [{"type": "blockdev-reopen", "data": {}}]}),
        Cmd("transaction", {"actions": [
            {"type": "blockdev-snapshot", "data": {"node": "base", "overlay": "ov"}},
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "ov", "snapshot-file": "{dir}/t.qcow2",
                "snapshot-node-name": "t"}}]}),
        Cmd("query-named-block-nodes", project=without_actual_size),
    ], ("t.qcow2",))

"""Refusals of block-stream and block-commit: the same error (class, text) as QEMU 7.2.

Every step runs on qemu-storage-daemon and on the engine; the differential
runner compares each reply and the graph after it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.jobs.test_differential import add, chain
from tests.support.qemu import create

pytestmark = pytest.mark.qemu


def named_chain() -> list[Cmd]:
    return [
        add("base", "base.qcow2", **{"read-only": True}),
        add("mid", "mid.qcow2", backing="base", **{"read-only": True}),
        add("top", "top.qcow2", backing="mid"),
        add("lone", "base.qcow2", **{"read-only": True, "force-share": True}),
        add("solo", "solo.qcow2"),
    ]


def setup(d: Path) -> None:
    chain(d)
    create(d / "solo.qcow2", "1M")


def stream(compare_graph: bool = True, **args: object) -> Cmd:
    return Cmd("block-stream", dict(args), compare_graph=compare_graph)


def commit(compare_graph: bool = True, **args: object) -> Cmd:
    return Cmd("block-commit", dict(args), compare_graph=compare_graph)


def test_block_stream_refusals(tmp_path: Path) -> None:
    run_jobs(tmp_path, setup, [
        *named_chain(),
        stream(device="top"),
        stream(device="nonexist"),
        stream(**{"job-id": "s", "device": "nonexist"}),
        stream(**{"job-id": "s", "device": "top", "base": "x", "base-node": "base"}),
        stream(**{"job-id": "s", "device": "top", "bottom": "mid", "base-node": "base"}),
        stream(**{"job-id": "s", "device": "top", "base": "x", "bottom": "mid"}),
        stream(**{"job-id": "s", "device": "top", "base-node": "nonexist"}),
        stream(**{"job-id": "s", "device": "top", "bottom": "nonexist"}),
        stream(**{"job-id": "s", "device": "top", "base-node": "top"}),
        stream(**{"job-id": "s", "device": "mid", "base-node": "top"}),
        stream(**{"job-id": "s", "device": "top", "base-node": "lone"}),
        stream(**{"job-id": "s", "device": "top", "base": "nonexist.qcow2"}),
        stream(**{"job-id": "s", "device": "top", "backing-file": "x"}),
        stream(**{"job-id": "s", "device": "top", "filter-node-name": "top"}),
        stream(**{"job-id": "s", "device": "top", "filter-node-name": "1bad"}),
        stream(**{"job-id": "1s", "device": "top"}),
        stream(**{"job-id": "s", "device": "top", "speed": -1}),
        stream(**{"job-id": "s", "device": "top", "on-error": "bogus"}),
        stream(**{"job-id": "s", "device": "top", "bogus": 1}),
        stream(**{"job-id": "s0", "device": "top", "speed": 1}),
        WaitStatus("s0", "running"),
        stream(**{"job-id": "s0", "device": "solo"}),
        stream(**{"job-id": "s1", "device": "top"}),
        stream(**{"job-id": "s1", "device": "mid"}),
        commit(**{"job-id": "c1", "device": "top"}),
        Cmd("blockdev-del", {"node-name": "top"}),
        Cmd("job-cancel", {"id": "s0"}, compare_graph=False),
        WaitStatus("s0", "null"),
        stream(False, **{"job-id": "s2", "device": "top", "bottom": "top"}),
        WaitStatus("s2", "null"),
    ])


def test_block_commit_refusals(tmp_path: Path) -> None:
    run_jobs(tmp_path, setup, [
        *named_chain(),
        commit(device="nonexist"),
        commit(**{"job-id": "c", "device": "nonexist"}),
        commit(device="top", **{"top-node": "mid"}),
        commit(**{"job-id": "c", "device": "mid"}),
        commit(**{"job-id": "c", "device": "lone"}),
        commit(**{"job-id": "c", "device": "top", "base-node": "top"}),
        commit(**{"job-id": "c", "device": "top", "top-node": "mid", "base-node": "top"}),
        commit(**{"job-id": "c", "device": "top", "top-node": "nonexist"}),
        commit(**{"job-id": "c", "device": "top", "base-node": "nonexist"}),
        commit(**{"job-id": "c", "device": "top", "top-node": "lone"}),
        commit(**{"job-id": "c", "device": "top", "top": "{dir}/nonexist.qcow2"}),
        commit(**{"job-id": "c", "device": "top", "top": "nonexist.qcow2"}),
        commit(**{"job-id": "c", "device": "top", "top-node": "mid", "top": "x"}),
        commit(**{"job-id": "c", "device": "top", "base-node": "base", "base": "x"}),
        commit(**{"job-id": "c", "device": "top", "base": "nonexist.qcow2"}),
        commit(**{"job-id": "c", "device": "top", "backing-file": "x"}),
        commit(**{"job-id": "c", "device": "top", "top-node": "mid", "speed": -1}),
        commit(**{"job-id": "c", "device": "top", "top-node": "mid",
                  "filter-node-name": "base"}),
        commit(**{"job-id": "c0", "device": "top", "top-node": "mid", "speed": 1}),
        WaitStatus("c0", "running"),
        commit(**{"job-id": "c0", "device": "solo"}),
        commit(**{"job-id": "c1", "device": "top"}),
        stream(**{"job-id": "s1", "device": "top"}),
        Cmd("block-job-cancel", {"device": "c0"}, compare_graph=False),
        WaitStatus("c0", "null"),
    ])

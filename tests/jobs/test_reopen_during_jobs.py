"""blockdev-reopen while stream and commit jobs run, against qemu-storage-daemon 7.2.

QEMU refuses to change the links a job froze and allows everything else (iotest 245
states the facts; the scenarios here are this project's own). Jobs are kept alive
with ``auto-finalize: false`` (the stream and intermediate commit wait in
``pending``, their filter and frozen links still there) or by the active commit's
``ready`` state; the graphs, error texts, header fields and guest content of every
image must match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20
IMAGES = ("hd0.qcow2", "hd1.qcow2", "hd2.qcow2")


def chain(d: Path) -> None:
    """hd2 <- hd1 <- hd0 (by header too), each with a stripe of its own."""
    create(d / "hd2.qcow2", 2 * MiB)
    qemu_io(d / "hd2.qcow2", "write -P 0xa2 0 1M")
    create(d / "hd1.qcow2", 2 * MiB, backing=str(d / "hd2.qcow2"))
    qemu_io(d / "hd1.qcow2", "write -P 0xa1 512k 512k")
    create(d / "hd0.qcow2", 2 * MiB, backing=str(d / "hd1.qcow2"))
    qemu_io(d / "hd0.qcow2", "write -P 0xa0 1M 256k")


def hd(i: int, **extra: Any) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": f"hd{i}",
            "file": {"driver": "file", "node-name": f"hd{i}-file",
                     "filename": "{dir}/" + f"hd{i}.qcow2"}, **extra}


def inline_chain() -> dict[str, Any]:
    return hd(0, backing=hd(1, backing=hd(2)))


def reopen(*options: dict[str, Any]) -> Cmd:
    return Cmd("blockdev-reopen", {"options": list(options)})


def finish(job: str) -> list[Any]:
    return [WaitStatus(job, "pending"), Cmd("job-finalize", {"id": job}, compare_graph=False),
            WaitStatus(job, "null")]


def test_stream_while_its_base_is_detached(tmp_path: Path) -> None:
    """The base's link is not frozen: detached mid-job, the stream writes no backing
    name into the header (and the data of the detached base is not copied)."""
    opts = inline_chain()
    detached = hd(0, backing=hd(1, backing=None))
    run_jobs(tmp_path, chain, [
        Cmd("blockdev-add", opts),
        Cmd("block-stream", {"job-id": "s0", "device": "hd0", "base-node": "hd2",
                             "auto-finalize": False}, compare_graph=False),
        WaitStatus("s0", "pending"),
        reopen(detached),
        reopen(hd(0, backing=None)),
        *finish("s0"),
        Cmd("query-named-block-nodes", {"flat": True}, compare_graph=False),
    ], IMAGES)


def test_stream_keeps_its_frozen_links(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        Cmd("blockdev-add", inline_chain()),
        Cmd("block-stream", {"job-id": "s0", "device": "hd1", "filter-node-name": "cor",
                             "auto-finalize": False}, compare_graph=False),
        WaitStatus("s0", "pending"),
        reopen(inline_chain()),
        reopen(hd(1, backing=hd(2), **{"read-only": True})),
        reopen(hd(1, backing=None, **{"read-only": False})),
        reopen(hd(1, backing="hd2")),
        reopen({"driver": "copy-on-read", "node-name": "cor", "file": "hd1"}),
        reopen({"driver": "copy-on-read", "node-name": "cor"}),
        reopen(hd(0, backing=None)),
        *finish("s0"),
    ], IMAGES)


def test_stream_reopen_of_the_device_and_its_file(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        Cmd("blockdev-add", inline_chain()),
        Cmd("block-stream", {"job-id": "s0", "device": "hd0", "auto-finalize": False},
            compare_graph=False),
        WaitStatus("s0", "pending"),
        reopen(hd(0, backing="hd1")),
        reopen(hd(0, backing="hd1", **{"read-only": True})),
        reopen(hd(0, backing="hd2")),
        reopen(hd(0, backing=hd(1, backing=hd(2)), **{"cache": {"no-flush": True}})),
        reopen({"driver": "file", "node-name": "hd0-file", "filename": "{dir}/hd0.qcow2"}),
        *finish("s0"),
    ], IMAGES)


def test_active_commit_keeps_its_frozen_links(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        Cmd("blockdev-add", inline_chain()),
        Cmd("block-commit", {"job-id": "c0", "device": "hd0"}, compare_graph=False),
        WaitStatus("c0", "ready"),
        reopen(hd(0, backing=hd(1, backing=None))),
        reopen(hd(0, backing=None)),
        reopen(inline_chain()),
        reopen(hd(2, **{"read-only": True})),
        Cmd("job-complete", {"id": "c0"}, compare_graph=False),
        WaitStatus("c0", "null"),
    ], IMAGES)


def test_intermediate_commit_keeps_its_frozen_links(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        Cmd("blockdev-add", inline_chain()),
        Cmd("block-commit", {"job-id": "c0", "device": "hd0", "top-node": "hd1",
                             "auto-finalize": False}, compare_graph=False),
        WaitStatus("c0", "pending"),
        reopen(hd(0, backing=hd(1, backing=None))),
        reopen(hd(0, backing=None)),
        reopen(hd(0, backing="hd2")),
        reopen(hd(1, backing="hd2")),
        reopen(hd(2)),
        *finish("c0"),
    ], IMAGES)


def test_reopen_with_stale_options_after_a_stream(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        Cmd("blockdev-add", inline_chain()),
        Cmd("block-stream", {"job-id": "s0", "device": "hd0", "base-node": "hd2"},
            compare_graph=False),
        WaitStatus("s0", "null"),
        reopen(inline_chain()),
        reopen(hd(0, backing=hd(2))),
        reopen(hd(0, backing="hd2")),
        reopen(hd(0)),
        reopen(hd(0, backing=None)),
    ], IMAGES)


def test_reopen_pauses_a_running_job_and_resumes_it(tmp_path: Path) -> None:
    """A reopen drains the nodes it touches: a running job pauses and resumes
    (``paused``/``running``); detaching the base mid-copy leaves no backing name."""
    def setup(d: Path) -> None:
        chain(d)
        qemu_io(d / "hd1.qcow2", "write -P 0xb1 0 2M")     # every chunk has data to copy

    run_jobs(tmp_path, setup, [
        Cmd("blockdev-add", inline_chain()),
        Cmd("block-stream", {"job-id": "s0", "device": "hd0", "base-node": "hd2",
                             "speed": 1}, compare_graph=False),
        WaitStatus("s0", "running"),
        reopen(hd(0, backing=hd(1, backing=None))),
        reopen(hd(0, backing=None)),
        Cmd("block-job-set-speed", {"device": "s0", "speed": 0}, compare_graph=False),
        WaitStatus("s0", "null"),
    ], IMAGES, compare_progress=False)

"""Stream and commit data movement, stepped deterministically (manual job manager).

Layers use different cluster sizes so the copies must widen runs to whole clusters
of the layer written; zero clusters in an intermediate must hide the base's data.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.jobs.engine_jobs import jobs_of
from engine.qmp import Engine
from tests.support.qemu import check, compare, create, info, qemu_io

pytestmark = pytest.mark.qemu


def chain(d: Path, base_fmt: str = "qcow2") -> None:
    if base_fmt == "raw":
        create(d / "base.img", "8M", fmt="raw")
        qemu_io(d / "base.img", "write -P 1 0 8M", fmt="raw")
        base, bfmt = d / "base.img", "raw"
    else:
        create(d / "base.img", "8M", options="cluster_size=4096")
        qemu_io(d / "base.img", "write -P 1 0 8M")
        base, bfmt = d / "base.img", "qcow2"
    create(d / "mid.qcow2", "8M", backing=str(base), backing_fmt=bfmt,
           options="cluster_size=16384")
    qemu_io(d / "mid.qcow2", "write -P 2 4100k 12k", "write -z 6M 64k", "write -P 5 1M 4k")
    create(d / "top.qcow2", "8M", backing=str(d / "mid.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 3 1M 64k")
    shutil.copy(d / "top.qcow2", d / "ref.qcow2")


def start(tmp: Path, command: str, args: dict[str, Any]) -> tuple[Engine, Any, list[str]]:
    eng = Engine()
    seq: list[str] = []
    eng.add_listener(lambda ev: seq.append(ev["data"].get("status") or ev["event"]))
    mgr = jobs_of(eng)
    mgr.manual = True
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top", "file": {
        "driver": "file", "filename": str(tmp / "top.qcow2")}})
    eng.execute(command, args)
    return eng, mgr.get(args["job-id"]), seq


def test_stream_steps_like_qemu_and_keeps_guest_content(tmp_path: Path) -> None:
    chain(tmp_path)
    eng, job, seq = start(tmp_path, "block-stream", {"job-id": "s", "device": "top"})
    offsets = []
    while job.step():
        offsets.append(job.progress_current)
    # QEMU's iterations: at most 512 KiB, cut where the top's allocation changes
    assert offsets[:5] == [0, 512 << 10, 1 << 20, (1 << 20) + (64 << 10), (1 << 20) + (576 << 10)]
    assert seq == ["created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED",
                   "concluded", "null"]
    eng.close()
    check(tmp_path / "top.qcow2")
    assert info(tmp_path / "top.qcow2").get("backing-filename") is None
    assert compare(tmp_path / "ref.qcow2", tmp_path / "top.qcow2")


@pytest.mark.parametrize("base_fmt", ["qcow2", "raw"])
def test_intermediate_commit_into_base(tmp_path: Path, base_fmt: str) -> None:
    chain(tmp_path, base_fmt)
    eng, job, seq = start(tmp_path, "block-commit", {
        "job-id": "c", "device": "top", "top": str(tmp_path / "mid.qcow2")})
    jobs_of(eng).run_manual(job)
    assert seq[-3:] == ["BLOCK_JOB_COMPLETED", "concluded", "null"]
    eng.close()
    check(tmp_path / "top.qcow2")
    if base_fmt == "qcow2":
        check(tmp_path / "base.img")
    assert info(tmp_path / "top.qcow2")["backing-filename"] == str(tmp_path / "base.img")
    assert compare(tmp_path / "ref.qcow2", tmp_path / "top.qcow2")


def test_active_commit_pivots_base_to_top_content(tmp_path: Path) -> None:
    chain(tmp_path)
    eng, job, seq = start(tmp_path, "block-commit", {"job-id": "c", "device": "top"})
    jobs_of(eng).run_manual(job)
    assert seq[-2:] == ["ready", "BLOCK_JOB_READY"]
    eng.execute("job-complete", {"id": "c"})
    jobs_of(eng).run_manual(job)
    assert seq[-3:] == ["BLOCK_JOB_COMPLETED", "concluded", "null"]
    eng.close()
    check(tmp_path / "base.img")
    assert compare(tmp_path / "ref.qcow2", tmp_path / "base.img")

"""Guest writes during a mirror job: the target converges on what the guest wrote.

The job is stepped deterministically (manual job manager); a VM disk on the source
writes through the ``mirror_top`` filter before and after the job is ready, and at
the end the target (after the pivot, the disk's medium) must read exactly as a
reference image that got the same writes (``qemu-img compare``), and pass
``qemu-img check``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.jobs.engine_jobs import jobs_of
from engine.jobs.mirror import DirtyMap
from engine.qmp import Engine
from tests.support.qemu import check, compare, create, qemu_io

pytestmark = pytest.mark.qemu


def images(d: Path) -> None:
    create(d / "base.qcow2", "4M")
    qemu_io(d / "base.qcow2", "write -P 1 0 2M")
    create(d / "top.qcow2", "4M", backing=str(d / "base.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 2 1M 512k")
    shutil.copy(d / "top.qcow2", d / "ref.qcow2")
    shutil.copy(d / "base.qcow2", d / "refbase.qcow2")
    create(d / "target.qcow2", "4M")


def engine_with_disk(d: Path) -> tuple[Engine, list[dict[str, Any]]]:
    eng = Engine()
    events: list[dict[str, Any]] = []
    eng.add_listener(events.append)
    jobs_of(eng).manual = True
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top", "file": {
        "driver": "file", "filename": str(d / "top.qcow2")}})
    eng.add_backend("disk0", "top")
    return eng, events


def guest_write(eng: Engine, offset: int, data: bytes) -> None:
    """A write of the disk's device: through its medium (the mirror_top filter now)."""
    backend = eng.graph.backend_names["disk0"]
    backend.root.child.io.write(offset, data)


@pytest.mark.parametrize("sync", ["full", "top", "none"])
def test_writes_during_the_job_reach_the_target(tmp_path: Path, sync: str) -> None:
    images(tmp_path)
    eng, events = engine_with_disk(tmp_path)
    eng.execute("drive-mirror", {"job-id": "m", "device": "top", "sync": sync,
                                 "target": str(tmp_path / "new.qcow2"), "node-name": "new"})
    mgr = jobs_of(eng)
    job = mgr.get("m")
    job.step()
    guest_write(eng, 3 << 20, b"\x07" * 70000)       # while copying
    mgr.run_manual(job)
    assert job.status == "ready"
    guest_write(eng, 100, b"\x09" * 5000)            # after ready: dirty again
    [info] = eng.execute("query-block-jobs", {})
    assert info["len"] > info["offset"]              # the new write is still to copy
    eng.execute("job-complete", {"id": "m"})
    mgr.run_manual(job)
    assert [e["event"] for e in events if e["event"].startswith("BLOCK_JOB")] == [
        "BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"]
    backend = eng.graph.backend_names["disk0"]
    assert backend.root.child.name == "new"          # the pivot
    eng.close()
    qemu_io(tmp_path / "ref.qcow2", "write -P 7 3M 70000", "write -P 9 100 5000")
    check(tmp_path / "new.qcow2")
    # (sync none: the target holds the writes and reads the rest through its new
    # backing file, the source)
    assert compare(tmp_path / "ref.qcow2", tmp_path / "new.qcow2")


def test_soft_cancel_after_ready_copies_late_writes_without_pivot(tmp_path: Path) -> None:
    images(tmp_path)
    eng, _ = engine_with_disk(tmp_path)
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "target", "file": {
        "driver": "file", "filename": str(tmp_path / "target.qcow2")}})
    eng.execute("blockdev-mirror", {"job-id": "m", "device": "top", "target": "target",
                                    "sync": "full"})
    mgr = jobs_of(eng)
    job = mgr.get("m")
    mgr.run_manual(job)
    guest_write(eng, 2 << 20, b"\x05" * 4096)
    eng.execute("block-job-cancel", {"device": "m"})
    mgr.run_manual(job)
    assert eng.graph.backend_names["disk0"].root.child.name == "top"   # no pivot
    eng.close()
    qemu_io(tmp_path / "ref.qcow2", "write -P 5 2M 4k")
    check(tmp_path / "target.qcow2")
    assert compare(tmp_path / "ref.qcow2", tmp_path / "target.qcow2")
    assert compare(tmp_path / "ref.qcow2", tmp_path / "top.qcow2")


def test_dirty_map_takes_runs_from_a_cursor_and_counts_the_last_chunk_cut() -> None:
    dirty = DirtyMap(granularity=4096, length=5 * 4096 + 100)
    dirty.mark(4096, 1)                  # chunk 1
    dirty.mark(3 * 4096 + 10, 3 * 4096)  # chunks 3..5 (5 is the cut one)
    assert dirty.count() == 4096 + 2 * 4096 + 100
    assert dirty.take(8192) == (4096, 8192)
    assert dirty.take(8192) == (3 * 4096, 5 * 4096)
    dirty.mark(0, 1)                     # behind the cursor: found after the wrap
    assert dirty.take(1 << 20) == (5 * 4096, 5 * 4096 + 100)
    assert dirty.take(1 << 20) == (0, 4096)
    assert dirty.take(1 << 20) is None
    assert dirty.count() == 0


def test_resumed_job_accepts_complete_at_once(tmp_path: Path) -> None:
    """As in QEMU, block-job-resume re-enters the job before it returns: a job paused
    in ready (standby) is ready again for the job-complete that follows."""
    images(tmp_path)
    eng, events = engine_with_disk(tmp_path)
    eng.execute("drive-mirror", {"job-id": "m", "device": "top", "sync": "full",
                                 "target": str(tmp_path / "new.qcow2")})
    mgr = jobs_of(eng)
    job = mgr.get("m")
    mgr.run_manual(job)
    eng.execute("block-job-pause", {"device": "m"})
    mgr.run_manual(job)
    assert job.status == "standby"
    eng.execute("block-job-resume", {"device": "m"})
    assert job.status == "ready"
    eng.execute("block-job-complete", {"device": "m"})
    mgr.run_manual(job)
    statuses = [e["data"]["status"] for e in events if e["event"] == "JOB_STATUS_CHANGE"]
    assert statuses == ["created", "running", "ready", "standby", "ready", "waiting",
                        "pending", "concluded", "null"]
    eng.close()
    check(tmp_path / "new.qcow2")
    assert compare(tmp_path / "ref.qcow2", tmp_path / "new.qcow2")

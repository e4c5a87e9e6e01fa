"""A full disk in the middle of creating a file leaves nothing half-written behind.

- ``blockdev-snapshot-sync`` whose overlay runs out of space at any of its writes:
  refused with the error, the graph as it was, and no overlay file left (one that
  existed before is left empty: its old content was gone once creation began);
- ``blockdev-create`` of a file with ``preallocation=full`` (or ``falloc``) that runs
  out of space: the job fails with QEMU's text and the file is back to empty, as QEMU
  truncates it back.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest

from engine.formats import fileio
from engine.qmp import Engine, QMPError
from tests.faults.support import Counter, NthCall
from tests.support.qemu import create

MIB = 1 << 20


def _engine_with_base(tmp_path: Path) -> Engine:
    tmp_path.mkdir()
    create(tmp_path / "base.qcow2", "1M")
    engine = Engine()
    engine.execute("blockdev-add", {"driver": "qcow2", "node-name": "base", "file": {
        "driver": "file", "filename": str(tmp_path / "base.qcow2")}})
    return engine


def _snapshot(engine: Engine, path: Path) -> None:
    engine.execute("blockdev-snapshot-sync", {
        "node-name": "base", "snapshot-file": str(path), "snapshot-node-name": "snap",
        "format": "qcow2"})


def _nodes(engine: Engine) -> list[str]:
    return sorted(n["node-name"] for n in engine.execute("query-named-block-nodes"))


@pytest.mark.parametrize("existed", [False, True], ids=["new", "existing"])
def test_snapshot_sync_on_a_full_disk_leaves_no_overlay(tmp_path: Path,
                                                        existed: bool) -> None:
    count = tmp_path / "count"
    engine = _engine_with_base(count)
    writes = Counter(str(count / "snap.qcow2"), "write")
    try:
        with fileio.faults(writes):
            _snapshot(engine, count / "snap.qcow2")
    finally:
        engine.close()
    assert writes.seen >= 2
    for k in range(1, writes.seen + 1):
        work = tmp_path / f"run{k}"
        engine = _engine_with_base(work)
        target = work / "snap.qcow2"
        if existed:
            target.write_bytes(b"old" * 1000)
        before = _nodes(engine)
        try:
            with fileio.faults(NthCall(str(target), "write", k, errno.ENOSPC)), \
                    pytest.raises(QMPError) as exc:
                _snapshot(engine, target)
            assert "No space left on device" in exc.value.desc
            assert _nodes(engine) == before
        finally:
            engine.close()
        if existed:
            assert target.stat().st_size == 0, k
        else:
            assert not target.exists(), k


def _create_job(engine: Engine, path: Path, prealloc: str) -> dict[str, Any]:
    engine.execute("blockdev-create", {"job-id": "c", "options": {
        "driver": "file", "filename": str(path), "size": 4 * MIB,
        "preallocation": prealloc}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = engine.execute("query-jobs")[0]
        if job["status"] == "concluded":
            return job
        time.sleep(0.01)
    raise AssertionError("the create job did not conclude")


def test_full_preallocation_on_a_full_disk_leaves_an_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "new.raw"
    engine = Engine()
    try:
        with fileio.faults(NthCall(str(target), "write", 3, errno.ENOSPC, sticky=True)):
            job = _create_job(engine, target, "full")
    finally:
        engine.close()
    assert job["error"] == "Could not write zeros for preallocation: No space left on device"
    assert target.stat().st_size == 0

"""ENOSPC and EIO while the engine streams, commits, snapshots and creates images.

The faults are injected under the engine, at the image file layer
(:mod:`engine.formats.fileio`), at each point the operation writes or syncs. After
every interrupted run the job (or command) reports the cause, the graph is as it
was, and — once the engine has closed the images — ``qemu-img check`` finds no
corruption and the guest view of the top image, read by ``qemu-img``, is unchanged.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from engine.formats import fileio
from engine.qmp import Engine, QMPError
from tests.faults.support import Counter, NthCall, check_intact, guest_bytes
from tests.fuzz.planner_cases import snapshot
from tests.support.qemu import create, info, qemu_io

SIZE = 2 << 20


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    """base.raw <- mid.qcow2 <- top.qcow2, each layer with its own data."""
    g = tmp_path / "golden"
    g.mkdir()
    create(g / "base.raw", SIZE, fmt="raw")
    qemu_io(g / "base.raw", "write -P 0x11 0 2M", fmt="raw")
    create(g / "mid.qcow2", SIZE, backing="base.raw", backing_fmt="raw",
           options="cluster_size=65536")
    qemu_io(g / "mid.qcow2", "write -P 0x22 64k 512k", "write -P 0x23 1536k 128k")
    create(g / "top.qcow2", SIZE, backing="mid.qcow2", backing_fmt="qcow2",
           options="cluster_size=65536")
    qemu_io(g / "top.qcow2", "write -P 0x33 0 128k", "write -P 0x34 1M 64k")
    return g


class Run:
    """One engine over a fresh copy of the golden chain."""

    def __init__(self, golden: Path, name: str) -> None:
        self.dir = golden.parent / name
        shutil.copytree(golden, self.dir)
        self.engine = Engine(rng_seed=1)
        self.events: list[dict[str, Any]] = []
        self.engine.add_listener(self.events.append)
        self.engine.execute("blockdev-add", {
            "driver": "qcow2", "node-name": "top",
            "file": {"driver": "file", "filename": str(self.dir / "top.qcow2")}})
        self.mid = next(n["node-name"] for n in self.engine.execute(
            "query-named-block-nodes", {"flat": True})
            if n["drv"] == "qcow2" and n["file"].endswith("mid.qcow2"))

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def wait_job(self, job_id: str, timeout: float = 20) -> dict[str, Any]:
        """The job's BLOCK_JOB_COMPLETED (or CANCELLED) event; completes active commits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events:
                if ev["event"] == "BLOCK_JOB_READY" and ev["data"]["device"] == job_id:
                    self.events.remove(ev)
                    self.engine.execute("job-complete", {"id": job_id})
                if ev["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED") and \
                        ev["data"]["device"] == job_id:
                    return ev
            time.sleep(0.005)
        raise AssertionError(f"job {job_id} did not finish: {self.engine.execute('query-jobs')}")

    def close(self) -> None:
        self.engine.close()


def structure(graph: Any) -> tuple[Any, ...]:
    """Nodes, their flags and header names, and links — not sizes (copied data counts)."""
    nodes = sorted((k, n.kind, n.driver, n.read_only, n.header_backing)
                   for k, n in graph.nodes.items())
    return tuple(nodes), tuple(sorted((e.parent, e.role, e.child) for e in graph.edges))


def _points(golden: Path, file: str, op: str, action: Any) -> int:
    """How many ``op`` calls on ``file`` a successful ``action(run)`` makes."""
    run = Run(golden, "probe")
    counter = Counter(run.path(file), op)
    try:
        with fileio.faults(counter):
            action(run)
    finally:
        run.close()
    return counter.seen


def _sample(n: int, limit: int = 12) -> list[int]:
    """Every point when there are few; else first, last and evenly spread ones."""
    if n <= limit:
        return list(range(1, n + 1))
    step = (n - 1) / (limit - 1)
    return sorted({1 + round(i * step) for i in range(limit)})


def _stream(run: Run) -> dict[str, Any]:
    run.engine.execute("block-stream", {"job-id": "s", "device": "top"})
    return run.wait_job("s")


def _commit(run: Run) -> dict[str, Any]:
    run.engine.execute("block-commit", {"job-id": "c", "device": "top", "top-node": run.mid})
    return run.wait_job("c")


def _active_commit(run: Run) -> dict[str, Any]:
    run.engine.execute("block-commit", {"job-id": "a", "device": "top"})
    return run.wait_job("a")


JOBS = {
    # (action, file that receives the writes, op, errno)
    "stream-enospc": (_stream, "top.qcow2", "write", errno.ENOSPC),
    "stream-header-eio": (_stream, "top.qcow2", "flush", errno.EIO),
    "commit-eio": (_commit, "base.raw", "write", errno.EIO),
    "commit-header-enospc": (_commit, "top.qcow2", "write", errno.ENOSPC),
    "active-commit-enospc": (_active_commit, "base.raw", "write", errno.ENOSPC),
}


@pytest.mark.engine_writes_damaged_images
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(JOBS))
def test_job_interrupted_by_io_error(golden: Path, case: str) -> None:
    action, file, op, err = JOBS[case]
    before = guest_bytes(golden / "top.qcow2")
    n = _points(golden, file, op, action)
    assert n >= 1, f"{case}: the job never did {op} on {file}"
    for k in _sample(n):
        run = Run(golden, f"{case}-{k}")
        graph_before = snapshot(run.engine)
        fault = NthCall(run.path(file), op, k, err, sticky=err == errno.ENOSPC)
        try:
            with fileio.faults(fault):
                done = action(run)
            assert fault.fired, f"{case}: point {k} of {n} was not reached"
            graph_after = snapshot(run.engine)
            failed = "error" in done["data"]
            if failed:   # the failure is reported, with its cause, and the graph is as it was
                assert done["event"] == "BLOCK_JOB_COMPLETED"
                assert os.strerror(err) in done["data"]["error"], done
                assert structure(graph_after) == structure(graph_before), \
                    f"{case} at point {k}: the graph changed: {graph_before.diff(graph_after)}"
            else:        # only an optional step failed (header tidy-up): the job is complete
                assert graph_after.backing("top") != graph_before.backing("top"), done
        finally:
            run.close()
        for image in ("mid.qcow2", "top.qcow2"):
            check_intact(run.path(image))
        assert guest_bytes(run.path("top.qcow2")) == before, f"{case} at {k}: guest changed"
        header = info(run.path("top.qcow2")).get("backing-filename")
        if failed and not (op == "flush" and case.startswith(("stream", "commit"))):
            # only an unknown sync outcome may leave a failed job's header rewritten
            assert header == "mid.qcow2", f"{case} at {k}: header {header}"


def test_snapshot_on_a_full_disk_reports_and_changes_nothing(golden: Path) -> None:
    run = Run(golden, "snap")
    before = guest_bytes(golden / "top.qcow2")
    try:
        graph_before = snapshot(run.engine)
        target = run.path("snap.qcow2")
        fault = NthCall(target, "write", 1, errno.ENOSPC)
        with fileio.faults(fault), pytest.raises(QMPError) as exc:
            run.engine.execute("blockdev-snapshot-sync", {
                "node-name": "top", "snapshot-file": target,
                "snapshot-node-name": "snap", "format": "qcow2"})
        assert fault.fired
        assert "No space left on device" in exc.value.desc, exc.value.desc
        assert structure(snapshot(run.engine)) == structure(graph_before)
    finally:
        run.close()
    check_intact(run.path("top.qcow2"))
    assert guest_bytes(run.path("top.qcow2")) == before


def test_blockdev_create_on_a_full_disk_fails_the_job(golden: Path) -> None:
    run = Run(golden, "create")
    try:
        target = run.path("new.qcow2")
        run.engine.execute("blockdev-create", {"job-id": "f", "options": {
            "driver": "file", "filename": target, "size": 0}})
        deadline = time.monotonic() + 10
        while run.engine.execute("query-jobs")[0]["status"] != "concluded":
            assert time.monotonic() < deadline
            time.sleep(0.005)
        run.engine.execute("job-dismiss", {"id": "f"})
        run.engine.execute("blockdev-add", {"driver": "file", "node-name": "nf",
                                            "filename": target})
        fault = NthCall(target, "write", 1, errno.ENOSPC)
        with fileio.faults(fault):
            run.engine.execute("blockdev-create", {"job-id": "q", "options": {
                "driver": "qcow2", "file": "nf", "size": SIZE}})
            deadline = time.monotonic() + 10
            while (job := run.engine.execute("query-jobs")[0])["status"] != "concluded":
                assert time.monotonic() < deadline
                time.sleep(0.005)
        assert fault.fired
        assert "No space left on device" in job.get("error", ""), job
    finally:
        run.close()

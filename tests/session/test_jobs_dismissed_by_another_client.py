"""Jobs that another client dismisses itself do not have the session crash QEMU.

A job started with ``auto-dismiss: false`` (as libvirt starts its jobs) stays
``concluded`` until dismissed. A stream job holds its implicit copy-on-read filter then,
detached from its child, and QEMU 7.2 segfaults in ``bdrv_refresh_filename`` if asked
for ``query-named-block-nodes``, so the session's read waits for the dismissal. Against
qemu-storage-daemon 7.2, a bounded run of stream, commit, mirror and backup jobs: the
daemon is alive after each and the graph read after the dismissal is the one the job
left.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gui.session import Session
from gui.session.jobs import JobTracker
from tests.support.peer import Peer
from tests.support.qemu import create

pytestmark = pytest.mark.qemu

KINDS = ("stream", "commit", "mirror", "backup")
ROUNDS = 2


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def add_chain(peer: Peer, workdir: Path, tag: str) -> dict[str, str]:
    """base <- mid <- top, named after ``tag``, added by another client."""
    workdir.mkdir()
    names = {role: f"{role}{tag}" for role in ("base", "mid", "top")}
    backing: str | None = None
    for role in ("base", "mid", "top"):
        path = create(workdir / f"{role}.qcow2", "1M",
                      backing=None if backing is None else str(workdir / f"{backing}.qcow2"))
        options: dict[str, Any] = {"driver": "qcow2", "node-name": names[role],
                                   "file": {"driver": "file", "filename": str(path)}}
        if backing is not None:
            options["backing"] = names[backing]
        peer.ok("blockdev-add", options)
        backing = role
    return names


def start_job(peer: Peer, kind: str, job: str, names: dict[str, str], workdir: Path) -> None:
    common = {"job-id": job, "auto-dismiss": False}
    if kind == "stream":
        peer.ok("block-stream", {**common, "device": names["top"]})
    elif kind == "commit":
        peer.ok("block-commit", {**common, "device": names["top"], "top-node": names["mid"],
                                 "base-node": names["base"]})
    else:
        target = create(workdir / "target.qcow2", "1M")
        names["target"] = f"target{job}"
        peer.ok("blockdev-add", {"driver": "qcow2", "node-name": names["target"],
                                 "file": {"driver": "file", "filename": str(target)}})
        peer.ok(f"blockdev-{kind}", {**common, "device": names["top"],
                                     "target": names["target"], "sync": "full"})


async def test_jobs_another_client_dismisses_leave_qemu_alive_and_the_graph_right(
        peer: Peer, tmp_path: Path) -> None:
    session = Session(peer.endpoint, poll_interval=None, job_poll_interval=0.05)
    await session.connect()
    try:
        for n in range(ROUNDS * len(KINDS)):
            kind = KINDS[n % len(KINDS)]
            job = f"j{n}"
            names = add_chain(peer, tmp_path / job, str(n))
            start_job(peer, kind, job, names, tmp_path / job)
            if kind == "mirror":
                await session.wait_job(job, ("ready",))
                peer.ok("job-complete", {"id": job})
            await session.wait_job(job, ("concluded",))
            # the end of the job called for a read: it has gone, or it waits
            await wait_for(lambda: not session.reading or session.read_deferred
                           or not session.connected)
            assert peer.proc is not None and peer.proc.poll() is None, (
                f"QEMU died after the {kind} job {job} concluded")
            assert session.connected
            peer.ok("job-dismiss", {"id": job})
            await session.wait_job(job, ("null",))
            await wait_for(lambda: not session.reading)
            snapshot = session.snapshot
            assert snapshot is not None
            assert not [k for k, node in snapshot.nodes.items()
                        if node.kind == "block-job" or node.implicit], "the job's nodes stay"
            if kind == "stream":
                assert snapshot.backing(names["top"]) is None
            elif kind == "commit":
                assert snapshot.backing(names["top"]) == names["base"]
            else:
                assert snapshot.backing(names["target"]) is None
                assert names["target"] in snapshot.nodes
            assert peer.ok("query-version")
    finally:
        await session.close()


async def test_a_streams_completion_makes_the_node_list_unsafe_until_its_null() -> None:
    """The completion event already counts: ``concluded`` follows it at once, and a read
    called for by the completion must not slip in before that event is taken in."""
    tracker = JobTracker(lambda _job: None)
    for kind in ("stream", "commit", "mirror"):
        job = f"{kind}0"
        await tracker.on_event("JOB_STATUS_CHANGE", {"id": job, "status": "pending"})
        assert not tracker.nodes_unsafe
        await tracker.on_event("BLOCK_JOB_COMPLETED", {"device": job, "type": kind,
                                                       "offset": 0, "len": 0})
        assert tracker.nodes_unsafe == (kind == "stream")
        await tracker.on_event("JOB_STATUS_CHANGE", {"id": job, "status": "concluded"})
        assert tracker.nodes_unsafe == (kind == "stream")
        await tracker.on_event("JOB_STATUS_CHANGE", {"id": job, "status": "null"})
        assert not tracker.nodes_unsafe

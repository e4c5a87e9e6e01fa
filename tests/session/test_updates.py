"""The session keeps its graph from events, its own commands and running jobs — not a clock.

Against qemu-storage-daemon 7.2 and the bundled engine: another client's job is seen
from its events alone (no safety re-read), its progress is polled only while it runs and
only with the job queries, and when nothing changes nothing is scheduled at all. While
an image is being created, no node query is sent (QEMU 7.2 aborts or hangs on one).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gui.executor import PlanExecutor
from gui.planner.intents import ExternalSnapshot
from gui.session import Session
from gui.session.traffic import TrafficEntry
from tests.planner.test_links import add_by_reference, chain
from tests.support.peer import Peer
from tests.support.qemu import qemu_io

pytestmark = pytest.mark.qemu


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def sent(entries: list[TrafficEntry]) -> list[str]:
    return [e.summary for e in entries if e.direction == "sent"]


async def test_another_clients_job_is_followed_by_its_events_alone(
        any_peer: Peer, tmp_path: Path) -> None:
    files = chain(tmp_path)
    qemu_io(files["base"], "write -P 0x11 0 1M")
    session = Session(any_peer.endpoint, poll_interval=None, job_poll_interval=0.05)
    await session.connect()
    try:
        assert session.snapshot is not None and session.snapshot.nodes == {}
        assert session.poll_deadline is None           # idle: nothing is read unasked
        add_by_reference(any_peer.ok, files)             # no event tells of these nodes...
        # ...but the job started on them does: the graph is read again, chain and job
        any_peer.ok("block-stream", {"job-id": "s0", "device": "top", "speed": 1})
        await wait_for(lambda: "job:s0" in session.snapshot.nodes)
        assert session.snapshot.backing("top") is not None
        assert "s0" in session.jobs

        # while it runs, its progress is asked for, and only that (the deadline is unset
        # only while a read is under way)
        await wait_for(lambda: session.poll_deadline is not None)
        mark = session.traffic.last_seq
        await wait_for(lambda: sent(session.traffic.since(mark)).count("query-block-jobs") >= 3)
        assert set(sent(session.traffic.since(mark))) == {"query-jobs", "query-block-jobs"}

        # it ends: its events have the graph read again, and the timer goes
        any_peer.ok("block-job-set-speed", {"device": "s0", "speed": 0})
        await wait_for(lambda: "job:s0" not in session.snapshot.nodes
                       and session.snapshot.backing("top") is None)
        await wait_for(lambda: "s0" not in session.jobs)
        assert session.poll_deadline is None
    finally:
        await session.close()


async def test_a_ready_job_waits_unpolled_and_its_end_is_an_event(
        any_peer: Peer, tmp_path: Path) -> None:
    """A ready job (an active commit waiting for its completion) has copied everything:
    the session stops asking for its progress and learns of its end from the events."""
    files = chain(tmp_path)
    qemu_io(files["top"], "write -P 0x22 0 64k")
    session = Session(any_peer.endpoint, poll_interval=None, job_poll_interval=0.05)
    await session.connect()
    try:
        add_by_reference(any_peer.ok, files)
        any_peer.ok("block-commit", {"job-id": "c0", "device": "top"})
        await wait_for(lambda: "c0" in session.jobs and session.jobs["c0"].status == "ready")
        # nothing is scheduled, whenever one looks (another client's round trips space
        # the looks; a polled job would have a deadline set nearly all the time)
        await wait_for(lambda: session.poll_deadline is None)
        looks = []
        for _ in range(20):
            any_peer.ok("query-jobs")
            await asyncio.sleep(0)
            looks.append(session.poll_deadline)
        assert looks == [None] * 20
        mark = session.traffic.last_seq
        any_peer.ok("job-complete", {"id": "c0"})
        await wait_for(lambda: "c0" not in session.jobs and "job:c0" not in session.snapshot.nodes)
        received = [e.message.get("event") for e in session.traffic.since(mark)
                    if e.direction == "received" and "event" in e.message]
        assert "BLOCK_JOB_COMPLETED" in received
        await wait_for(lambda: session.poll_deadline is None)
    finally:
        await session.close()


async def test_idle_session_sends_nothing_and_a_safety_interval_can_be_set(
        any_peer: Peer) -> None:
    any_peer.ok("blockdev-add", {"driver": "null-co", "node-name": "n0"})
    session = Session(any_peer.endpoint, poll_interval=None)
    await session.connect()
    try:
        mark = session.traffic.last_seq
        # the other client's commands take round trips of real time; the session sleeps
        for _ in range(20):
            any_peer.ok("query-named-block-nodes", {"flat": True})
        await asyncio.sleep(0)
        assert session.poll_deadline is None
        assert session.traffic.since(mark) == []
        # the safety re-read, set on the running session, is scheduled from then on
        any_peer.ok("blockdev-add", {"driver": "null-co", "node-name": "n1"})   # no event
        session.set_poll_interval(0.05)
        await wait_for(lambda: "n1" in session.snapshot.nodes)
        session.set_poll_interval(None)
        await wait_for(lambda: session.poll_deadline is None)
    finally:
        await session.close()


async def test_no_node_query_while_an_image_is_created(any_peer: Peer, any_session: Session,
                                                       tmp_path: Path) -> None:
    """QEMU 7.2 aborts (qcow2_get_specific_info: Assertion `false' failed) or hangs when
    query-named-block-nodes arrives while blockdev-create writes a qcow2 image."""
    files = chain(tmp_path)
    any_peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "disk", "file": {
        "driver": "file", "filename": str(files["base"])}})
    await any_session.refresh(force=True)
    mark = any_session.traffic.last_seq
    executor = PlanExecutor(any_session)
    for n in range(3):
        plan = executor.plan(ExternalSnapshot("disk" if n == 0 else f"snap{n - 1}",
                                              f"snap{n}", str(tmp_path / f"snap{n}.qcow2")))
        report = await executor.run(plan)
        assert report.as_expected, report.mismatches
    creating: set[str] = set()
    checked = 0
    for entry in any_session.traffic.since(mark):
        msg = entry.message
        if entry.direction == "sent" and msg.get("execute") == "blockdev-create":
            creating.add(msg["arguments"]["job-id"])
        elif msg.get("event") == "JOB_STATUS_CHANGE" and msg["data"]["status"] == "concluded":
            creating.discard(msg["data"]["id"])
        elif entry.direction == "sent" and msg.get("execute") == "query-named-block-nodes":
            assert not creating, f"node query while creating {creating}"
            checked += 1
    assert checked >= 3          # the graph was read between the snapshots, just not then

"""The job lifecycle, verbs and events on a synthetic driver (no images involved).

The sequences asserted here are the ones qemu-storage-daemon 7.2 emits (see the
differential tests for the same sequences from the real daemon).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from engine.clock import ManualClock
from engine.graph.names import check_job_id
from engine.jobs import Job, JobCommandError, JobDriver, JobFailed, JobManager, OnError
from engine.jobs.ratelimit import RateLimiter
from engine.jobs.status import TRANSITIONS, VERBS, JobStatus, JobVerb


class Chunks(JobDriver):
    """Copies ``n`` pretend chunks of 1 MiB; can fail at one chunk or wait for complete."""

    job_type = "stream"

    def __init__(self, n: int = 4, fail_at: int | None = None, fail_errno: int = errno.EIO,
                 fail_times: int = 1, ready: bool = False) -> None:
        self.n = n
        self.fail_at = fail_at
        self.fail_errno = fail_errno
        self.fail_times = fail_times
        self.ready = ready
        self.can_complete = ready
        self.job_type = "commit" if ready else "stream"
        self.should_complete = False
        self.hooks: list[str] = []

    def run(self, job: Job) -> Iterator[Any]:
        job.set_remaining(self.n << 20)
        first_error = 0
        i = 0
        while i < self.n:
            yield
            if job.cancel_requested:
                return
            if i == self.fail_at and self.fail_times > 0:
                self.fail_times -= 1
                action = job.error_action(True, self.fail_errno)
                if action == "stop":
                    continue
                first_error = first_error or self.fail_errno
                if action == "report":
                    raise JobFailed(self.fail_errno)
            job.progress(1 << 20)
            job.account_copied(1 << 20)
            i += 1
        if first_error:
            raise JobFailed(first_error)
        if self.ready:
            job.transition_to_ready()
            while not (self.should_complete or job.cancel_requested):
                yield Job.WAIT

    def complete(self, job: Job) -> None:
        self.should_complete = True

    def cancel(self, job: Job, force: bool) -> bool:
        return force or not job.ready if self.ready else True

    def prepare(self, job: Job) -> None:
        self.hooks.append("prepare")

    def commit(self, job: Job) -> None:
        self.hooks.append("commit")

    def abort(self, job: Job) -> None:
        self.hooks.append("abort")

    def clean(self, job: Job) -> None:
        self.hooks.append("clean")


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, ev: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(ev)

    def seq(self) -> list[str]:
        """Event names, with the status for JOB_STATUS_CHANGE and the action for errors."""
        out = []
        for ev in self.events:
            d = ev["data"]
            if ev["event"] == "JOB_STATUS_CHANGE":
                out.append(d["status"])
            elif ev["event"] == "BLOCK_JOB_ERROR":
                out.append(f"ERROR:{d['action']}")
            else:
                out.append(ev["event"].removeprefix("BLOCK_JOB_"))
        return out


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def manual(rec: Recorder) -> JobManager:
    return JobManager(sink=rec, clock=ManualClock(), manual=True)


def start(mgr: JobManager, driver: JobDriver, job_id: str = "j0", **kw: Any) -> Job:
    with mgr.lock:
        job = mgr.create(job_id, driver, **kw)
        job.start()
    return job


SUCCESS = ["created", "running", "waiting", "pending", "COMPLETED", "concluded", "null"]


def test_success_sequence_and_hooks(manual: JobManager, rec: Recorder) -> None:
    drv = Chunks()
    job = start(manual, drv)
    manual.run_manual(job)
    assert rec.seq() == SUCCESS
    assert drv.hooks == ["prepare", "commit", "clean"]
    done = rec.events[4]["data"]
    assert done == {"type": "stream", "device": "j0", "len": 4 << 20, "offset": 4 << 20,
                    "speed": 0}
    assert manual.query_jobs() == []
    ts = rec.events[0]["timestamp"]
    assert set(ts) == {"seconds", "microseconds"}


def test_manual_finalize_and_dismiss(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks(), auto_finalize=False, auto_dismiss=False)
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "waiting", "pending", "PENDING"]
    assert rec.events[-1]["data"] == {"type": "stream", "id": "j0"}
    with manual.lock:
        with pytest.raises(JobCommandError, match=r"^Job 'j0' in state 'pending' cannot accept "
                                                  r"command verb 'dismiss'$"):
            job.dismiss()
        job.finalize()
    assert rec.seq()[-2:] == ["COMPLETED", "concluded"]
    assert manual.query_block_jobs()[0]["status"] == "concluded"
    with manual.lock:
        job.dismiss()
    assert rec.seq()[-1] == "null"
    assert manual.query_jobs() == []


def test_cancel_running(manual: JobManager, rec: Recorder) -> None:
    drv = Chunks()
    job = start(manual, drv)
    job.step()
    job.step()
    with manual.lock:
        job.user_cancel(True)
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "aborting", "CANCELLED", "concluded", "null"]
    assert drv.hooks == ["abort", "clean"]
    cancelled = rec.events[3]["data"]
    assert cancelled["offset"] < cancelled["len"]


def test_cancel_pending_aborts(manual: JobManager, rec: Recorder) -> None:
    drv = Chunks()
    job = start(manual, drv, auto_finalize=False)
    manual.run_manual(job)
    with manual.lock:
        job.user_cancel(False)
    assert rec.seq()[-4:] == ["aborting", "CANCELLED", "concluded", "null"]
    assert drv.hooks == ["abort", "clean"]


def test_failure_report(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks(fail_at=1))
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "ERROR:report", "aborting", "COMPLETED",
                         "concluded", "null"]
    assert rec.events[2]["data"] == {"device": "j0", "operation": "read", "action": "report"}
    assert rec.events[4]["data"]["error"] == "Input/output error"


def test_failure_stop_pauses_then_resume_retries(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks(fail_at=1), on_error=OnError.STOP, auto_dismiss=False)
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "ERROR:stop", "paused"]
    info = manual.query_block_jobs()[0]
    assert info["io-status"] == "failed" and info["paused"] is True
    with manual.lock:
        job.user_resume()
    manual.run_manual(job)
    assert rec.seq()[4:] == ["running", "waiting", "pending", "COMPLETED", "concluded"]
    assert manual.query_block_jobs()[0]["io-status"] == "ok"


def test_enospc_stops_only_on_enospc(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks(fail_at=0, fail_errno=errno.ENOSPC), on_error=OnError.ENOSPC)
    manual.run_manual(job)
    assert rec.seq()[-2:] == ["ERROR:stop", "paused"]
    assert manual.query_block_jobs()[0]["io-status"] == "nospace"
    with manual.lock:
        job.user_cancel(True)
    manual.run_manual(job)
    assert rec.seq()[-5:] == ["running", "aborting", "CANCELLED", "concluded", "null"]
    job2 = start(manual, Chunks(fail_at=0), "j2", on_error=OnError.ENOSPC)
    manual.run_manual(job2)
    assert "ERROR:report" in rec.seq()


def test_ignore_continues_then_fails(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks(fail_at=1), on_error=OnError.IGNORE)
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "ERROR:ignore", "aborting", "COMPLETED",
                         "concluded", "null"]
    done = rec.events[4]["data"]
    assert done["offset"] == done["len"] and done["error"] == "Input/output error"


def test_pause_resume_events_and_errors(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks())
    job.step()
    with manual.lock:
        job.user_pause()
        with pytest.raises(JobCommandError, match=r"^Job is already paused$"):
            job.user_pause()
    manual.run_manual(job)
    assert rec.seq()[-1] == "paused"
    with manual.lock:
        job.user_resume()
        with pytest.raises(JobCommandError, match=r"^Can't resume a job that was not paused$"):
            job.user_resume()
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "paused", "running", *SUCCESS[2:]]


def test_ready_complete(manual: JobManager, rec: Recorder) -> None:
    drv = Chunks(ready=True)
    job = start(manual, drv, "c")
    manual.run_manual(job)
    assert rec.seq() == ["created", "running", "ready", "READY"]
    assert rec.events[-1]["data"] == {"type": "commit", "device": "c", "len": 4 << 20,
                                      "offset": 4 << 20, "speed": 0}
    with manual.lock:
        job.user_pause()
    manual.run_manual(job)
    assert rec.seq()[-1] == "standby"
    with manual.lock:
        job.user_resume()
    manual.run_manual(job)
    with manual.lock:
        job.complete()
    manual.run_manual(job)
    assert rec.seq()[4:] == ["standby", "ready", "waiting", "pending", "COMPLETED", "concluded",
                             "null"]


def test_complete_before_ready_refused(manual: JobManager) -> None:
    job = start(manual, Chunks(ready=True), "c")
    job.step()
    with manual.lock, pytest.raises(JobCommandError) as exc:
        job.complete()
    assert exc.value.desc == "Job 'c' in state 'running' cannot accept command verb 'complete'"


def test_soft_cancel_after_ready_completes(manual: JobManager, rec: Recorder) -> None:
    drv = Chunks(ready=True)
    job = start(manual, drv, "c")
    manual.run_manual(job)
    with manual.lock:
        job.user_cancel(False)
    manual.run_manual(job)
    assert rec.seq()[4:] == ["waiting", "pending", "COMPLETED", "concluded", "null"]
    assert drv.should_complete is False


def test_force_cancel_after_ready(manual: JobManager, rec: Recorder) -> None:
    job = start(manual, Chunks(ready=True), "c")
    manual.run_manual(job)
    with manual.lock:
        job.user_cancel(True)
    manual.run_manual(job)
    assert rec.seq()[4:] == ["aborting", "CANCELLED", "concluded", "null"]
    assert rec.events[5]["data"]["offset"] == rec.events[5]["data"]["len"]


def test_job_ids_and_lookup_errors(manual: JobManager) -> None:
    start(manual, Chunks(), auto_dismiss=False, auto_finalize=False)
    with pytest.raises(JobCommandError, match=r"^Job ID 'j0' already in use$"):
        manual.create("j0", Chunks())
    for bad in ("", "#x", "1x", "a b"):
        with pytest.raises(JobCommandError) as exc:
            manual.create(bad, Chunks())
        assert exc.value.desc == f"Invalid job ID '{bad}'"
    assert check_job_id("x" * 200) is None  # no length limit, unlike node names
    with pytest.raises(JobCommandError) as exc:
        manual.find_job("nope")
    assert (exc.value.error_class, exc.value.desc) == ("GenericError", "Job not found")
    with pytest.raises(JobCommandError) as exc:
        manual.find_block_job("nope")
    assert (exc.value.error_class, exc.value.desc) == ("DeviceNotActive",
                                                       "Block job 'nope' not found")


def test_verb_table_matches_transitions() -> None:
    """Every verb-accepting state is a real state, and null accepts nothing."""
    for verb, states in VERBS.items():
        assert JobStatus.NULL not in states, verb
        assert states <= set(TRANSITIONS)
    assert VERBS[JobVerb.COMPLETE] == {JobStatus.READY}


def test_set_speed(manual: JobManager) -> None:
    job = start(manual, Chunks(), speed=1 << 20)
    with manual.lock:
        with pytest.raises(JobCommandError, match=r"^Parameter 'speed' expects a non-negative "
                                                  r"value$"):
            job.set_speed(-1)
        job.set_speed(2 << 20)
    assert manual.query_block_jobs()[0]["speed"] == 2 << 20


def test_rate_limit_with_manual_clock(rec: Recorder) -> None:
    clock = ManualClock()
    mgr = JobManager(sink=rec, clock=clock, manual=True)
    job = start(mgr, Chunks(n=4), speed=1 << 20)  # 1 MiB/s, 1 MiB chunks
    for _ in range(10):
        job.step()
    # the first chunk went out at once, the next waits for a second of tokens
    assert job.progress_current == 1 << 20
    clock.advance(1.0)
    for _ in range(10):
        job.step()
    assert job.progress_current == 2 << 20
    # idle time is not banked beyond one 100 ms slice: no burst after a long wait
    clock.advance(5.0)
    mgr.run_manual(job)
    assert job.progress_current == 3 << 20
    clock.advance(1.0)
    mgr.run_manual(job)
    assert job.progress_current == 4 << 20


def test_ratelimiter_long_run_rate() -> None:
    lim = RateLimiter(10 << 20)
    now, sent = 0.0, 0
    while now < 10.0:
        now += lim.delay(now)
        lim.account(1 << 20, now)
        sent += 1 << 20
    assert 95 << 20 <= sent <= 103 << 20


def test_threaded_job_pause_cancel(rec: Recorder) -> None:
    mgr = JobManager(sink=rec)
    job = start(mgr, Chunks(n=1000), speed=1 << 20)  # slow: ~1 chunk/s
    with mgr.lock:
        job.user_pause()
    with mgr.cond:
        assert mgr.cond.wait_for(lambda: job.status == "paused", 5)
        job.user_resume()
        assert mgr.cond.wait_for(lambda: job.status == "running", 5)
        job.user_cancel(True)
    assert job.finished.wait(5)
    assert rec.seq() == ["created", "running", "paused", "running", "aborting", "CANCELLED",
                         "concluded", "null"]


def test_engine_close_cancels_running_jobs(tmp_path) -> None:
    """Closing the engine stops a throttled stream cleanly before the images close."""
    from engine.qmp import Engine
    from tests.support.qemu import create, qemu_io

    create(tmp_path / "base.qcow2", "4M")
    qemu_io(tmp_path / "base.qcow2", "write -P 1 0 4M")
    create(tmp_path / "top.qcow2", "4M", backing=str(tmp_path / "base.qcow2"))
    eng = Engine()
    events: list[dict[str, Any]] = []
    eng.add_listener(events.append)
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top", "file": {
        "driver": "file", "filename": str(tmp_path / "top.qcow2")}})
    eng.execute("block-stream", {"job-id": "s", "device": "top", "speed": 1})
    eng.close()
    statuses = [e["data"]["status"] for e in events if e["event"] == "JOB_STATUS_CHANGE"]
    assert statuses == ["created", "running", "aborting", "concluded", "null"]
    assert [e["event"] for e in events].count("BLOCK_JOB_CANCELLED") == 1


def test_failing_listener_does_not_strand_the_job() -> None:
    seen: list[str] = []

    def listener(ev: dict[str, Any]) -> None:
        seen.append(ev["data"].get("status", ev["event"]))
        raise RuntimeError("listener bug")

    mgr = JobManager(sink=listener, clock=ManualClock(), manual=True)
    job = start(mgr, Chunks())
    mgr.run_manual(job)
    assert seen == [*SUCCESS[:4], "BLOCK_JOB_COMPLETED", "concluded", "null"]
    assert job.status == "null"

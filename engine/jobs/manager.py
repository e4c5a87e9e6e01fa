"""The set of jobs of one engine: ids, lookups, queries and event delivery.

The manager shares the engine's lock, so job state and graph state change
together. Lookups raise QEMU's two different "not found" answers: ``job-*``
verbs say ``Job not found`` (GenericError), ``block-job-*`` verbs say
``Block job 'x' not found`` (DeviceNotActive) and never see non-block jobs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.clock import Clock, RealClock, timestamp
from engine.graph import rules
from engine.graph.faults import FaultInjector
from engine.jobs.errors import JobCommandError
from engine.jobs.job import Job, JobDriver, OnError

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
Emitter = Callable[[str, dict[str, Any]], object]


class JobManager:
    """Owns the jobs and delivers their events.

    Events go to ``emitter(name, data)`` (the engine's ``emit``, which stamps and fans
    them out) or, standalone, as complete QMP event dicts stamped with ``clock`` to
    ``sink``.
    """

    def __init__(self, lock: threading.RLock | None = None, sink: EventSink | None = None,
                 clock: Clock | None = None, manual: bool = False,
                 emitter: Emitter | None = None) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.clock: Clock = clock or RealClock()
        self.manual = manual
        self._sink = sink
        self._emitter = emitter
        self._jobs: list[Job] = []  # newest first, like QEMU's job list
        #: injected I/O failures for the images jobs touch (tests)
        self.faults = FaultInjector()

    def set_sink(self, sink: EventSink | None) -> None:
        self._sink = sink

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Deliver one event now (callers hold the lock, so events keep their order)."""
        try:
            self._deliver(event, data)
        except Exception:  # a broken listener must not strand the job mid-transition
            log.exception("job event %s: a listener failed", event)

    def _deliver(self, event: str, data: dict[str, Any]) -> None:
        if self._emitter is not None:
            self._emitter(event, data)
        elif self._sink is not None:
            self._sink({"event": event, "data": data,
                        "timestamp": timestamp(self.clock.wall())})

    # -- creation ----------------------------------------------------------------------

    def check_new_id(self, job_id: str) -> None:
        """QEMU's job_create checks: well-formed and unused (:func:`rules.check_job_id`)."""
        rules.check_job_id(None, job_id, () if self.get(job_id) is None else (job_id,))

    def create(self, job_id: str, driver: JobDriver, *, auto_finalize: bool = True,
               auto_dismiss: bool = True, speed: int = 0,
               on_error: OnError = OnError.REPORT) -> Job:
        """Register a job in ``created`` (emits the event); ``start`` it next."""
        with self.lock:
            self.check_new_id(job_id)
            if speed < 0:
                raise JobCommandError("Parameter 'speed' expects a non-negative value")
            job = Job(self, job_id, driver, auto_finalize=auto_finalize,
                      auto_dismiss=auto_dismiss, speed=speed, on_error=on_error)
            self._jobs.insert(0, job)
            job.create()
            return job

    def forget(self, job: Job) -> None:
        """Drop a dismissed job (status ``null``)."""
        if job in self._jobs:
            self._jobs.remove(job)

    # -- lookups -----------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return next((j for j in self._jobs if j.id == job_id), None)

    def find_job(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobCommandError("Job not found")
        return job

    def find_block_job(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None or not job.is_block_job:
            raise JobCommandError(f"Block job '{job_id}' not found", "DeviceNotActive")
        return job

    @property
    def jobs(self) -> list[Job]:
        with self.lock:
            return list(self._jobs)

    def query_jobs(self) -> list[dict[str, Any]]:
        with self.lock:
            return [j.job_info() for j in self._jobs]

    def query_block_jobs(self) -> list[dict[str, Any]]:
        with self.lock:
            return [j.block_job_info() for j in self._jobs if j.is_block_job]

    # -- tests and shutdown -----------------------------------------------------------

    def run_manual(self, job: Job, max_steps: int = 1_000_000) -> int:
        """Manual mode: step ``job`` until it stops progressing or finishes; returns steps."""
        steps = 0
        while steps < max_steps and job.step():
            steps += 1
            with self.lock:
                if job.paused or (job._request is Job.WAIT and not job._kicked
                                  and not job.cancelled):
                    break
        return steps

    def cancel_all(self, timeout: float = 10.0) -> None:
        """Force-cancel every unfinished job and wait for them (engine shutdown)."""
        with self.lock:
            live = [j for j in self._jobs if not j.finished.is_set()]
            for job in live:
                if job.status not in ("concluded", "null", "aborting"):
                    job.cancel(True)
        for job in live:
            if job._thread is not None:
                job._thread.join(timeout)

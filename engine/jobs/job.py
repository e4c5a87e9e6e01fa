"""One background job: QEMU's lifecycle, verbs and events around a driver's work.

A driver (stream, commit, create …) supplies ``run(job)``, a generator that does
the work in chunks and ``yield``s between them. Each ``yield`` is a *pause point*
(QEMU's ``job_pause_point``): there the job sleeps for its rate limit, stops while
paused, and the driver looks at ``job.cancel_requested`` on resuming. Yielding
``Job.WAIT`` instead sleeps until a verb kicks the job (an active commit waiting in
``ready`` for ``job-complete``).

The generator runs on a worker thread (or, with a manual ``JobManager``, one step
per ``Job.step()`` call so tests are deterministic). Every state change happens
under the manager's lock, which is the engine's lock, and each one emits the event
QEMU emits, so listeners see the same sequence as from qemu-storage-daemon:

* success: created, running, waiting, pending, [BLOCK_JOB_PENDING],
  BLOCK_JOB_COMPLETED, concluded, null;
* cancel: …, aborting, BLOCK_JOB_CANCELLED, concluded, null;
* failure: …, aborting, BLOCK_JOB_COMPLETED with ``error``, concluded, null.

After the work, ``prepare`` (the graph change that may still fail), then ``commit``
or ``abort``, then ``clean`` run under the lock, as QEMU's JobDriver hooks do.

Slightly over 500 lines: one class, one state machine — its transitions, verbs and
events are QEMU's table (:mod:`engine.jobs.status`) in action and read as one; the
manager, rate limits and each driver's work are in modules of their own.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from engine.jobs.errors import JobCommandError, JobFailed
from engine.jobs.ratelimit import RateLimiter
from engine.jobs.status import COMPLETED_STATES, TRANSITIONS, JobStatus, JobVerb, verb_error

if TYPE_CHECKING:
    from engine.jobs.manager import JobManager

log = logging.getLogger(__name__)

S = JobStatus
_NOT_STARTED: Any = object()


class OnError(StrEnum):
    """The ``on-error`` argument of block jobs."""

    REPORT = "report"
    IGNORE = "ignore"
    STOP = "stop"
    ENOSPC = "enospc"


class ErrorAction(StrEnum):
    """What a job did about one failed request (BLOCK_JOB_ERROR ``action``)."""

    REPORT = "report"
    IGNORE = "ignore"
    STOP = "stop"


class JobDriver:
    """What a kind of job does; the hooks mirror QEMU's JobDriver.

    ``run`` works outside the engine lock; the other hooks are called with it held.
    """

    #: QMP ``type`` (``stream``, ``commit``, ``create`` …)
    job_type: str = ""
    #: block jobs have speed, len/offset, io-status and the BLOCK_JOB_* events
    is_block_job: bool = True
    #: whether ``job-complete`` is meaningful (active commit)
    can_complete: bool = False

    def run(self, job: Job) -> Iterator[Any]:
        """Do the work, yielding at each pause point; raise JobFailed to fail."""
        return iter(())

    def prepare(self, job: Job) -> None:
        """Apply the result (graph change) before the job concludes; raise JobFailed to abort."""

    def commit(self, job: Job) -> None:
        """The job succeeded."""

    def abort(self, job: Job) -> None:
        """The job failed or was cancelled: undo what ``run`` set up."""

    def clean(self, job: Job) -> None:
        """Always last: release what the job held."""

    def complete(self, job: Job) -> None:
        """``job-complete`` was accepted (only called when ``can_complete``)."""

    def cancel(self, job: Job, force: bool) -> bool:
        """A cancel request; return whether it is forced. Default: every cancel is forced."""
        return True


class Job:
    """A job and its state; verbs are called with the manager's lock held."""

    #: yield this from ``run`` to sleep until a verb kicks the job
    WAIT: Any = object()

    def __init__(self, manager: JobManager, job_id: str, driver: JobDriver, *,
                 auto_finalize: bool = True, auto_dismiss: bool = True, speed: int = 0,
                 on_error: OnError = OnError.REPORT) -> None:
        self.manager = manager
        self.id = job_id
        self.driver = driver
        self.type = driver.job_type
        self.status = S.UNDEFINED
        self.auto_finalize = auto_finalize
        self.auto_dismiss = auto_dismiss
        self.on_error = on_error
        self.progress_current = 0
        self.progress_total = 0
        self.ret = 0
        self.error: str | None = None
        self.cancelled = False
        self.force_cancel = False
        self.user_paused = False
        self.pause_count = 0
        self.paused = False
        self.busy = False
        self.started = False
        self.deferred = False
        self.ready = False
        self.iostatus = "ok"
        self.limiter = RateLimiter(speed, manager.clock.monotonic())
        self._kicked = False
        self._status_before_pause = S.RUNNING
        self._request: Any = _NOT_STARTED
        self._gen: Iterator[Any] | None = None
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()

    # -- queries -----------------------------------------------------------------

    @property
    def is_block_job(self) -> bool:
        return self.driver.is_block_job

    @property
    def speed(self) -> int:
        return self.limiter.speed

    @property
    def cancel_requested(self) -> bool:
        """Any cancel (soft or forced) was asked for: the driver should stop working."""
        return self.cancelled

    @property
    def is_cancelled(self) -> bool:
        """A forced cancel: the job will end as cancelled (a soft one completes instead)."""
        return self.cancelled and self.force_cancel

    @property
    def is_completed(self) -> bool:
        return self.status in COMPLETED_STATES

    @property
    def finished(self) -> threading.Event:
        """Set once the job reached ``concluded`` (or ``null``)."""
        return self._finished

    def job_info(self) -> dict[str, Any]:
        """The query-jobs entry (JobInfo)."""
        info: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "status": str(self.status),
            "current-progress": self.progress_current,
            "total-progress": self.progress_total,
        }
        if self.ret:
            info["error"] = self.error or os.strerror(-self.ret)
        return info

    def block_job_info(self) -> dict[str, Any]:
        """The query-block-jobs entry (BlockJobInfo)."""
        info: dict[str, Any] = {
            "type": self.type,
            "device": self.id,
            "len": self.progress_total,
            "offset": self.progress_current,
            "busy": self.busy,
            "paused": self.pause_count > 0,
            "speed": self.speed,
            "io-status": self.iostatus,
            "ready": self.ready,
            "status": str(self.status),
            "auto-finalize": self.auto_finalize,
            "auto-dismiss": self.auto_dismiss,
        }
        if self.ret:
            info["error"] = self.error or os.strerror(-self.ret)
        return info

    # -- called by drivers from run() ------------------------------------------------

    def set_remaining(self, remaining: int) -> None:
        """QEMU's job_progress_set_remaining: total = done + remaining."""
        self.progress_total = self.progress_current + remaining

    def progress(self, done: int) -> None:
        self.progress_current += done

    def account_copied(self, nbytes: int) -> None:
        """Charge ``nbytes`` actually copied against the speed limit."""
        with self.manager.lock:
            self.limiter.account(nbytes, self.manager.clock.monotonic())

    def error_action(self, is_read: bool, err: int) -> ErrorAction:
        """Decide and announce what to do about a failed request (QEMU's block_job_error_action).

        ``stop`` pauses the job as if the user had (``job-resume`` retries the request).
        """
        if self.on_error in (OnError.ENOSPC,):
            action = ErrorAction.STOP if err == errno.ENOSPC else ErrorAction.REPORT
        elif self.on_error == OnError.STOP:
            action = ErrorAction.STOP
        elif self.on_error == OnError.IGNORE:
            action = ErrorAction.IGNORE
        else:
            action = ErrorAction.REPORT
        with self.manager.lock:
            self.manager.emit("BLOCK_JOB_ERROR", {
                "device": self.id,
                "operation": "read" if is_read else "write",
                "action": str(action),
            })
            if action == ErrorAction.STOP:
                if not self.user_paused:
                    self.pause_count += 1
                    self.user_paused = True
                if self.iostatus == "ok":
                    self.iostatus = "nospace" if err == errno.ENOSPC else "failed"
        return action

    def transition_to_ready(self) -> None:
        """The job's source and target are in sync (active commit): READY + BLOCK_JOB_READY."""
        with self.manager.lock:
            self._transition(S.READY)
            self.ready = True
            self.manager.emit("BLOCK_JOB_READY", {
                "type": self.type, "device": self.id, "len": self.progress_total,
                "offset": self.progress_current, "speed": self.speed,
            })

    # -- lifecycle -------------------------------------------------------------------

    def _transition(self, new: JobStatus) -> None:
        old = self.status
        if new != old and new not in TRANSITIONS[old]:
            raise AssertionError(f"job {self.id}: illegal transition {old} -> {new}")
        self.status = new
        if new != old:
            self.manager.emit("JOB_STATUS_CHANGE", {"id": self.id, "status": str(new)})
        if new in (S.CONCLUDED, S.NULL):
            self._finished.set()
        self.manager.cond.notify_all()

    def create(self) -> None:
        """Enter ``created`` (the caller registered the job)."""
        self._transition(S.CREATED)

    def early_fail(self) -> None:
        """The command that created the job failed before starting it: ``null``, gone."""
        self._transition(S.NULL)
        self.manager.forget(self)

    def start(self) -> None:
        """Enter ``running`` and start the driver (on a thread unless the manager is manual)."""
        self.started = True
        self.busy = True
        self._transition(S.RUNNING)
        self._gen = self.driver.run(self)
        if not self.manager.manual:
            self._thread = threading.Thread(target=self._thread_main, name=f"job-{self.id}",
                                            daemon=True)
            self._thread.start()

    def _gate(self) -> float | None:
        """At a pause point: 0 to go on, seconds to sleep, or None to wait for a verb."""
        if self.pause_count > 0 and not self.is_cancelled:
            if not self.paused:
                self._status_before_pause = self.status
                self.paused = True
                self.busy = False
                self._transition(S.STANDBY if self.status == S.READY else S.PAUSED)
            return None
        if self.paused:
            self.paused = False
            self._transition(self._status_before_pause)
        if self.cancelled:
            return 0
        if self._request is Job.WAIT:
            if self._kicked:
                self._kicked = False
                return 0
            return None
        delay = self.limiter.delay(self.manager.clock.monotonic())
        return delay if delay > 0 else 0

    def _advance(self) -> bool:
        """Run the driver to its next pause point; False when it has finished."""
        assert self._gen is not None
        try:
            self._request = next(self._gen)
            return True
        except StopIteration:
            self._exit(0, None)
        except JobFailed as exc:
            self._exit(-exc.errno, exc.message)
        except Exception as exc:  # a bug or an unexpected I/O failure must not hang the job
            log.exception("job %s failed", self.id)
            self._exit(-errno.EIO, str(exc) or os.strerror(errno.EIO))
        return False

    def _thread_main(self) -> None:
        cond = self.manager.cond
        while True:
            with cond:
                while (wait := self._gate()) != 0:
                    self.busy = False
                    self.manager.clock.wait(cond, wait)
                self.busy = True
            if not self._advance():
                return

    def step(self) -> bool:
        """Manual mode: pass one pause point if allowed; False once the job has finished.

        Returns True without progress while the job is paused, rate-limited (advance
        the ManualClock) or waiting for a verb.
        """
        if self._gen is None or self.deferred:
            return False
        with self.manager.lock:
            if self._request is not _NOT_STARTED and self._gate() != 0:
                return True
        return self._advance()

    def _exit(self, ret: int, message: str | None) -> None:
        """The driver's work ended (QEMU's job_exit): decide the outcome."""
        with self.manager.lock:
            self.deferred = True
            self.busy = False
            if ret < 0:
                self.ret = ret
                self.error = message or os.strerror(-ret)
            self._completed()

    def _update_rc(self) -> int:
        if not self.ret and self.is_cancelled:
            self.ret = -errno.ECANCELED
        if self.ret:
            if self.error is None:
                self.error = os.strerror(-self.ret)
            self._transition(S.ABORTING)
        return self.ret

    def _completed(self) -> None:
        if self._update_rc():
            self._finalize_single()
            return
        self._transition(S.WAITING)
        self._transition(S.PENDING)
        if not self.auto_finalize:
            if self.is_block_job:
                self.manager.emit("BLOCK_JOB_PENDING", {"type": self.type, "id": self.id})
            return
        self._do_finalize()

    def _do_finalize(self) -> None:
        if self.ret == 0:
            try:
                self.driver.prepare(self)
            except JobFailed as exc:
                self.ret = -exc.errno
                self.error = exc.message or os.strerror(exc.errno)
            except Exception as exc:  # e.g. a graph refusal: fail the job, never strand it
                log.exception("job %s: prepare failed", self.id)
                self.ret = -errno.EIO
                self.error = str(exc) or os.strerror(errno.EIO)
        self._finalize_single()

    def _finalize_single(self) -> None:
        self._update_rc()
        try:
            if self.ret == 0:
                self.driver.commit(self)
            else:
                self.driver.abort(self)
        finally:
            self.driver.clean(self)
        if self.started and self.is_block_job:
            data: dict[str, Any] = {
                "type": self.type, "device": self.id, "len": self.progress_total,
                "offset": self.progress_current, "speed": self.speed,
            }
            if self.is_cancelled:
                self.manager.emit("BLOCK_JOB_CANCELLED", data)
            else:
                if self.ret:
                    data["error"] = self.error
                self.manager.emit("BLOCK_JOB_COMPLETED", data)
        self._transition(S.CONCLUDED)
        if self.auto_dismiss or not self.started:
            self._do_dismiss()

    def _do_dismiss(self) -> None:
        self.paused = False
        self.deferred = True
        self._transition(S.NULL)
        self.manager.forget(self)

    def _kick(self) -> None:
        self._kicked = True
        self.manager.cond.notify_all()

    # -- verbs (lock held) -------------------------------------------------------------

    def _check_verb(self, verb: JobVerb) -> None:
        text = verb_error(self.id, self.status, verb)
        if text is not None:
            raise JobCommandError(text)

    def user_pause(self) -> None:
        self._check_verb(JobVerb.PAUSE)
        if self.user_paused:
            raise JobCommandError("Job is already paused")
        self.user_paused = True
        self.pause_count += 1
        self.manager.cond.notify_all()

    def user_resume(self) -> None:
        if not self.user_paused or self.pause_count <= 0:
            raise JobCommandError("Can't resume a job that was not paused")
        self._check_verb(JobVerb.RESUME)
        if self.is_block_job:
            self.iostatus = "ok"
        self.user_paused = False
        self.pause_count -= 1
        self.manager.cond.notify_all()

    def user_cancel(self, force: bool) -> None:
        self._check_verb(JobVerb.CANCEL)
        self.cancel(force)

    def cancel(self, force: bool) -> None:
        """QEMU's job_cancel: dismiss a concluded job, abort a finished one, else stop the work."""
        if self.status == S.CONCLUDED:
            self._do_dismiss()
            return
        force = self.driver.cancel(self, force)
        if self.user_paused:
            if self.is_block_job:
                self.iostatus = "ok"
            self.user_paused = False
            self.pause_count -= 1
        if force or not self.deferred:
            self.cancelled = True
            self.force_cancel |= force
        if not self.started:
            self._completed()
        elif self.deferred:
            if self.is_cancelled:
                self._finalize_single()
        else:
            self._kick()

    def drain_begin(self) -> None:
        """A graph change drains nodes this job uses (QEMU's child_job_drained_begin): the
        job pauses at once (``paused``, or ``standby`` when ready) until the drain ends."""
        self.pause_count += 1
        if self.status in (S.RUNNING, S.READY) and not self.paused and not self.deferred:
            self._status_before_pause = self.status
            self.paused = True
            self.busy = False
            self._transition(S.STANDBY if self.status == S.READY else S.PAUSED)

    def drain_end(self) -> None:
        self.pause_count -= 1
        if self.pause_count == 0 and self.paused:
            self.paused = False
            self._transition(self._status_before_pause)
        self.manager.cond.notify_all()

    def complete(self) -> None:
        self._check_verb(JobVerb.COMPLETE)
        if self.cancel_requested or not self.driver.can_complete:
            raise JobCommandError(f"The active block job '{self.id}' cannot be completed")
        self.driver.complete(self)
        self._kick()

    def finalize(self) -> None:
        self._check_verb(JobVerb.FINALIZE)
        self._do_finalize()

    def dismiss(self) -> None:
        self._check_verb(JobVerb.DISMISS)
        self._do_dismiss()

    def set_speed(self, speed: int) -> None:
        self._check_verb(JobVerb.SET_SPEED)
        if speed < 0:
            raise JobCommandError("Parameter 'speed' expects a non-negative value")
        self.limiter.set_speed(speed, self.manager.clock.monotonic())
        self.manager.cond.notify_all()

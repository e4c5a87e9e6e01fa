"""The peer's block jobs as the session sees them: status from events, progress from queries.

QEMU reports every status change of a job in a ``JOB_STATUS_CHANGE`` event and the end
of a block job in ``BLOCK_JOB_COMPLETED`` / ``BLOCK_JOB_CANCELLED`` (with the error, if
any); the bytes done so far are only in ``query-jobs``. :class:`JobTracker` keeps both,
reports each change, and lets a caller wait until a job reaches a status — every status
a job passed through since it was last forgotten counts, so a job whose events arrive
before the reply of the command that started it is still seen.

It also knows which jobs make progress (to poll only while one does) and whether the
node list may be asked for (:attr:`JobTracker.nodes_unsafe`: not while an image is being
created nor while a stream job waits to be dismissed, see :mod:`gui.session.updates`).
A job's type comes from ``query-jobs``, or from the command this client started it with
(:meth:`JobTracker.starting`), which is known before QEMU's first event about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gui.session.errors import Disconnected, JobFailed, SessionError
from gui.session.updates import ACTIVE, DETACHED_FILTER_JOB_TYPES, PROGRESSING

#: the job type each job-starting command starts (query-jobs' ``type``)
JOB_TYPES = {"blockdev-create": "create", "block-stream": "stream", "block-commit": "commit",
             "blockdev-mirror": "mirror", "drive-mirror": "mirror", "blockdev-backup": "backup",
             "drive-backup": "backup"}


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job as last seen: status from events, progress from ``query-jobs``."""

    id: str
    type: str = ""
    status: str = ""
    current: int = 0
    total: int = 0
    error: str | None = None


class JobTracker:
    """Jobs by id, the history of each, and waiting for a status (on the session's loop)."""

    def __init__(self, report: Callable[[JobProgress], None]) -> None:
        self._report = report
        self._jobs: dict[str, JobProgress] = {}
        self._history: dict[str, list[JobProgress]] = {}
        self._types: dict[str, str] = {}
        #: jobs this client is starting: sent, no status seen yet
        self._starting: set[str] = set()
        #: jobs whose completion (or cancellation) event has been seen: they end soon
        self._completed: set[str] = set()
        self._changed = asyncio.Condition()

    @property
    def jobs(self) -> Mapping[str, JobProgress]:
        """The jobs that exist now (a dismissed job is gone)."""
        return dict(self._jobs)

    def __bool__(self) -> bool:
        return bool(self._jobs)

    @property
    def progressing(self) -> bool:
        """Whether a job is making progress now (its progress is worth polling)."""
        return any(j.status in PROGRESSING for j in self._jobs.values())

    @property
    def creating(self) -> bool:
        """Whether an image is being created (a ``create`` job that has not ended)."""
        return any(self._types.get(job_id) == "create" for job_id in self._starting) or any(
            self._types.get(j.id) == "create" and j.status in ACTIVE
            for j in self._jobs.values())

    @property
    def holding_dropped_filter(self) -> bool:
        """Whether a stream job has concluded (or said it completed: its ``concluded``
        follows at once) and not been dismissed: it still holds its filter node, which
        has lost its child."""
        return any((j.status == "concluded" or j.id in self._completed)
                   and self._types.get(j.id) in DETACHED_FILTER_JOB_TYPES
                   for j in self._jobs.values())

    @property
    def nodes_unsafe(self) -> bool:
        """Whether QEMU 7.2 must not be asked for its node list now (it would abort or
        crash): an image is being created, or a stream job waits to be dismissed."""
        return self.creating or self.holding_dropped_filter

    @property
    def untyped(self) -> bool:
        """Whether a job exists whose type is not known (another client started it)."""
        return any(j.id not in self._types for j in self._jobs.values() if j.status in ACTIVE)

    def starting(self, command: str, arguments: Mapping[str, Any]) -> str | None:
        """This client is about to send ``command``: if it starts a job, note the job (its
        id, returned) and its type before QEMU says anything about it."""
        job_type = JOB_TYPES.get(command)
        job_id = arguments.get("job-id", arguments.get("device"))
        if job_type is None or not isinstance(job_id, str):
            return None
        self._types[job_id] = job_type
        self._starting.add(job_id)
        return job_id

    async def not_started(self, job_id: str) -> None:
        """The command that was to start ``job_id`` failed: there is no such job."""
        self._starting.discard(job_id)
        await self.wake()

    async def until_nodes_safe(self, timeout: float) -> None:
        """Wait until the node list may be asked for (SessionError after ``timeout`` s)."""
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: not self.nodes_unsafe)
            except TimeoutError:
                what = ("an image creation to end" if self.creating
                        else "a concluded job to be dismissed")
                raise SessionError(f"timed out waiting for {what}") from None

    async def on_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Take in a QMP event (any: those that are not about jobs are ignored)."""
        if name == "JOB_STATUS_CHANGE":
            job_id = str(data.get("id"))
            old = self._jobs.get(job_id, JobProgress(job_id))
            await self._update(JobProgress(old.id, old.type, str(data.get("status")),
                                           old.current, old.total, old.error))
        elif name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            job_id = str(data.get("device"))
            old = self._jobs.get(job_id, JobProgress(job_id))
            error = data.get("error") or ("cancelled" if name == "BLOCK_JOB_CANCELLED" else None)
            self._completed.add(job_id)
            await self._update(JobProgress(old.id, str(data.get("type", old.type)),
                                           old.status, int(data.get("offset", 0)),
                                           int(data.get("len", 0)), error))

    def on_query(self, reply: Iterable[Mapping[str, Any]]) -> None:
        """Take in a ``query-jobs`` reply: progress (and type, status) of every job. A job
        the reply does not list has ended unseen (while disconnected, say): it is reported
        as ``null`` and dropped."""
        reply = list(reply)
        listed = {str(j["id"]) for j in reply}
        for job_id in [k for k in self._jobs if k not in listed and k not in self._starting]:
            gone = self._jobs.pop(job_id)
            self._completed.discard(job_id)
            self._report(JobProgress(gone.id, gone.type, "null", gone.current, gone.total,
                                     gone.error))
        for j in reply:
            job_id = str(j["id"])
            old = self._jobs.get(job_id, JobProgress(job_id))
            new = JobProgress(job_id, str(j.get("type", "")), str(j.get("status", "")),
                              int(j.get("current-progress", 0)),
                              int(j.get("total-progress", 0)), j.get("error") or old.error)
            self._types[job_id] = new.type
            if new != old:
                self._jobs[job_id] = new
                self._report(new)

    async def _update(self, job: JobProgress) -> None:
        self._starting.discard(job.id)
        if job.type:
            self._types.setdefault(job.id, job.type)
        job = JobProgress(job.id, job.type or self._types.get(job.id, ""), job.status,
                          job.current, job.total, job.error)
        if job.status == "null":
            self._jobs.pop(job.id, None)
            self._completed.discard(job.id)
        else:
            self._jobs[job.id] = job
        self._history.setdefault(job.id, []).append(job)
        self._report(job)
        await self.wake()

    async def wake(self) -> None:
        """Wake every waiter to look again (a job changed, or the connection did)."""
        async with self._changed:
            self._changed.notify_all()

    def forget(self, job_id: str) -> None:
        """Drop what was seen of ``job_id`` before: a new job of that id is about to start."""
        self._history.pop(job_id, None)
        self._completed.discard(job_id)

    async def wait(self, job_id: str, until: tuple[str, ...], timeout: float,
                   gone: Callable[[], bool]) -> JobProgress:
        """Wait until job ``job_id`` has reached a status in ``until`` (seen since forgotten).

        Raises JobFailed if it was cancelled or failed first, Disconnected once ``gone()``
        says the connection is lost, SessionError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                # a job that aborts says why only as it concludes (QEMU's completion
                # event, or the cancel): wait for that rather than report "aborted"
                aborted = False
                for job in self._history.get(job_id, []):
                    if job.error and job.status in ("concluded", "null", ""):
                        raise JobFailed(job_id, "cancelled" if job.error == "cancelled"
                                        else "failed", job.error)
                    if job.status == "aborting":
                        aborted = True
                    elif job.status in until or (aborted and job.status in ("concluded",
                                                                             "null")):
                        if aborted:
                            raise JobFailed(job_id, "aborted", job.error)
                        return job
                if gone():
                    raise Disconnected(f"connection lost while waiting for job {job_id}",
                                       outcome_unknown=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SessionError(f"timed out waiting for job {job_id} to become "
                                       f"{'/'.join(until)}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()

"""QEMU's job lifecycle as data: the states, the legal transitions and the verbs.

A job moves ``created → running → (ready ⇄ standby) → waiting → pending →
concluded → null``; ``running ⇄ paused``; any live state can go to ``aborting``.
QEMU checks every user verb (``job-pause``, ``block-job-complete`` …) against a
table of the states that accept it and answers with one fixed sentence when the
state does not. Both tables below are QEMU 7.2's; keeping them as data lets the
job code assert every transition and lets tests enumerate the whole matrix.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """The ``status`` member of JOB_STATUS_CHANGE, query-jobs and query-block-jobs."""

    UNDEFINED = "undefined"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    READY = "ready"
    STANDBY = "standby"
    WAITING = "waiting"
    PENDING = "pending"
    ABORTING = "aborting"
    CONCLUDED = "concluded"
    NULL = "null"


class JobVerb(StrEnum):
    """The user actions QEMU gates by state (the words appear in error texts)."""

    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    SET_SPEED = "set-speed"
    COMPLETE = "complete"
    FINALIZE = "finalize"
    DISMISS = "dismiss"


S = JobStatus

#: Legal state changes (QEMU's JobSTT). A change to the same state is a no-op.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.UNDEFINED: frozenset({S.CREATED}),
    S.CREATED: frozenset({S.RUNNING, S.ABORTING, S.NULL}),
    S.RUNNING: frozenset({S.PAUSED, S.READY, S.WAITING, S.ABORTING}),
    S.PAUSED: frozenset({S.RUNNING}),
    S.READY: frozenset({S.STANDBY, S.WAITING, S.ABORTING}),
    S.STANDBY: frozenset({S.READY}),
    S.WAITING: frozenset({S.PENDING, S.ABORTING}),
    S.PENDING: frozenset({S.ABORTING, S.CONCLUDED}),
    S.ABORTING: frozenset({S.ABORTING, S.CONCLUDED}),
    S.CONCLUDED: frozenset({S.NULL}),
    S.NULL: frozenset(),
}

_LIVE = frozenset({S.CREATED, S.RUNNING, S.PAUSED, S.READY, S.STANDBY})

#: States in which each verb is accepted (QEMU's JobVerbTable).
VERBS: dict[JobVerb, frozenset[JobStatus]] = {
    JobVerb.CANCEL: _LIVE | {S.WAITING, S.PENDING},
    JobVerb.PAUSE: _LIVE,
    JobVerb.RESUME: _LIVE,
    JobVerb.SET_SPEED: _LIVE,
    JobVerb.COMPLETE: frozenset({S.READY}),
    JobVerb.FINALIZE: frozenset({S.PENDING}),
    JobVerb.DISMISS: frozenset({S.CONCLUDED}),
}

#: States after the job's work has ended (QEMU's job_is_completed).
COMPLETED_STATES = frozenset({S.WAITING, S.PENDING, S.ABORTING, S.CONCLUDED, S.NULL})


def verb_error(job_id: str, status: JobStatus, verb: JobVerb) -> str | None:
    """QEMU's refusal text for ``verb`` in ``status``, or None when it is accepted."""
    if status in VERBS[verb]:
        return None
    return f"Job '{job_id}' in state '{status}' cannot accept command verb '{verb}'"

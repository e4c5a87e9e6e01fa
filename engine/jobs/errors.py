"""Errors of the job layer.

``JobCommandError`` is a refused QMP command: the engine's one refusal type, with
QEMU's error class and exact text, sent as the QMP error reply as it is.
``JobFailed`` ends a running job: it carries an errno and the sentence QEMU reports
in BLOCK_JOB_COMPLETED/query-jobs.
"""

from __future__ import annotations

import os

from engine.graph.rules.errors import RuleViolation

#: A job verb or job-starting command refused, as QEMU would answer it (the one
#: refusal type: ``JobCommandError(text, error_class)``).
JobCommandError = RuleViolation


class JobFailed(Exception):
    """Raised inside a job to end it with an error (``errno`` positive, e.g. EIO)."""

    def __init__(self, errno_: int, message: str | None = None) -> None:
        self.errno = errno_
        self.message = message or os.strerror(errno_)
        super().__init__(self.message)

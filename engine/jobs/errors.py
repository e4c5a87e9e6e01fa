"""Errors of the job layer.

``JobCommandError`` is a refused QMP command: it carries QEMU's error class and
exact text and becomes the QMP error reply. ``JobFailed`` ends a running job: it
carries an errno and the sentence QEMU reports in BLOCK_JOB_COMPLETED/query-jobs.
"""

from __future__ import annotations

import os


class JobCommandError(Exception):
    """A job verb or job-starting command refused, as QEMU would answer it."""

    def __init__(self, desc: str, error_class: str = "GenericError") -> None:
        super().__init__(desc)
        self.desc = desc
        self.error_class = error_class


class JobFailed(Exception):
    """Raised inside a job to end it with an error (``errno`` positive, e.g. EIO)."""

    def __init__(self, errno_: int, message: str | None = None) -> None:
        self.errno = errno_
        self.message = message or os.strerror(errno_)
        super().__init__(self.message)

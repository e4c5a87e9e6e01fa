"""Background jobs of the bundled engine: QEMU's job lifecycle over real image data.

``status`` holds QEMU's state and verb tables, ``job`` the lifecycle and events,
``manager`` the set of jobs, ``ratelimit``/``clock`` the speed limit and
injectable time. The data-moving drivers (``stream``, ``commit``, ``create``) and
the QMP commands that start and steer jobs build on these.
"""

from engine.jobs.errors import JobCommandError, JobFailed
from engine.jobs.job import ErrorAction, Job, JobDriver, OnError
from engine.jobs.manager import JobManager
from engine.jobs.status import JobStatus, JobVerb

__all__ = [
    "ErrorAction",
    "Job",
    "JobCommandError",
    "JobDriver",
    "JobFailed",
    "JobManager",
    "JobStatus",
    "JobVerb",
    "OnError",
]

# Importing the package registers the job commands with the engine.
from engine.jobs import commands as _commands  # noqa: F401
from engine.jobs import commit as _commit  # noqa: F401
from engine.jobs import create as _create  # noqa: F401
from engine.jobs import stream as _stream  # noqa: F401

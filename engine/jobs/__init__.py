"""Background jobs of the bundled engine: QEMU's job lifecycle over real image data.

``status`` holds QEMU's state and verb tables, ``job`` the lifecycle and events,
``manager`` the set of jobs, ``ratelimit`` the speed limit (time is
:mod:`engine.clock`'s). The data-moving drivers (``stream``, ``commit``, ``create``) and
the snapshot operations build on these; their QMP commands live in
:mod:`engine.qmp` (``commands_jobs``, ``commands_snapshot``).
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

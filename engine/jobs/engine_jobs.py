"""The job manager of an engine, created on first use and tied to its lock and events."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.jobs.manager import JobManager
from engine.qdict import qdict_sorted

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

_MANAGERS: weakref.WeakKeyDictionary[Any, JobManager] = weakref.WeakKeyDictionary()


def jobs_of(engine: Engine) -> JobManager:
    """The engine's JobManager: it shares ``engine.lock`` and emits through ``engine.emit``."""
    mgr = _MANAGERS.get(engine)
    if mgr is None:
        def emit(event: str, data: dict[str, Any]) -> None:
            engine.emit(event, qdict_sorted(data))

        mgr = JobManager(engine.lock, emitter=emit)
        mgr.faults = engine.graph.io.faults
        engine.graph.drain_listeners.append(_drain_jobs(engine, mgr))
        _MANAGERS[engine] = mgr
        engine.on_close.append(mgr.cancel_all)
    return mgr


def _drain_jobs(engine: Engine, mgr: JobManager) -> Callable[[frozenset[str], bool], None]:
    """Pause (and resume) the jobs that use a drained node, as QEMU's drain does."""
    drained: list[Any] = []

    def listener(names: frozenset[str], begin: bool) -> None:
        if begin:
            jobs = [mgr.get(jp.job_id) for jp in engine.graph.jobs.values()
                    if any(link.child.name in names for link in jp.links)]
            drained.append([j for j in jobs if j is not None])
            for job in drained[-1]:
                job.drain_begin()
        elif drained:
            for job in drained.pop():
                job.drain_end()

    return listener

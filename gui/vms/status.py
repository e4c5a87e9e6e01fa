"""The status column's words: a VM's state and the jobs QEMU runs for it."""

from __future__ import annotations

from gui.session import Session


def jobs_text(session: Session) -> list[str]:
    """One short text per job: ``stream 40%``, ``commit ready`` (finished ones left out)."""
    out = []
    for job in session.jobs.values():
        if job.status in ("concluded", "null"):
            continue
        if job.status == "running" and job.total:
            out.append(f"{job.type or 'job'} {100 * job.current // job.total}%")
        else:
            out.append(f"{job.type or 'job'} {job.status or 'created'}")
    return out


def vm_status(state: str, session: Session | None, error: str | None = None) -> str:
    """``running``, ``paused, commit ready``, ``shut off``, ``running, not readable: …``."""
    parts = [state]
    if session is not None and session.connected:
        parts += jobs_text(session)
    if error:
        parts.append(error)
    return ", ".join(parts)

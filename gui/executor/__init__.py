"""Running plans on a peer: the one place every plan goes through. Qt-free.

    from gui.executor import PlanExecutor

    executor = PlanExecutor(session)          # any PlanPeer: a gui.session.Session
    plan = executor.plan(SetBacking("top", "base"))   # planned on the graph as last read
    report = await executor.run(plan)         # preflight again, send, wait for the jobs,
    report.snapshot, report.mismatches        #   read the graph back, compare with the plan

A refused plan raises :class:`~gui.session.PreflightRefused` before anything is sent; a
command that fails raises :class:`~gui.session.CommandFailed`, a job that fails
:class:`~gui.session.JobFailed` — after the graph was read back, so views show the real
state. The editor's edits and the command line both run their plans here.
"""

from gui.executor.executor import ExecutionReport, PlanExecutor, PlanPeer

__all__ = ["ExecutionReport", "PlanExecutor", "PlanPeer"]

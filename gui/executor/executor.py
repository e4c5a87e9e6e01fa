"""The plan executor: a plan's steps sent to a peer, its jobs waited for, its promise checked.

The executor holds no state of its own beyond the peer it runs on, so a caller may
make one per plan or keep one per connection. It asks the peer for the graph it last
read (to plan on and to preflight again), sends each command, waits for each job the
plan waits for (dismissing it where the plan says so), and reads the graph back at the
end: the report holds that graph and every fact of the plan's promise it contradicts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.graph.rules import Device, devices_from_query_block
from engine.graph.snapshot import GraphSnapshot
from gui.planner import PlanContext, check_plan, plan_intent
from gui.planner.intents import Intent
from gui.planner.plan import Plan, QmpCommand
from gui.session.capabilities import PeerCapabilities
from gui.session.errors import (
    CommandFailed,
    Disconnected,
    JobFailed,
    PreflightRefused,
    SessionError,
)


class PlanPeer(Protocol):
    """What a plan is run on: a :class:`gui.session.Session` is one."""

    @property
    def snapshot(self) -> GraphSnapshot | None: ...

    @property
    def capabilities(self) -> PeerCapabilities | None: ...

    @property
    def added_options(self) -> Mapping[str, Mapping[str, Any]]: ...

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None
                      ) -> Any: ...

    async def refresh(self, *, force: bool = False) -> GraphSnapshot: ...

    async def wait_job(self, job_id: str, until: tuple[str, ...],
                       timeout: float | None = None) -> Any: ...

    def forget_job(self, job_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What running a plan did: the graph after and where it differs from the plan."""

    plan: Plan
    snapshot: GraphSnapshot
    mismatches: tuple[str, ...] = ()
    results: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def as_expected(self) -> bool:
        return not self.mismatches


class PlanExecutor:
    """Plans intents on a peer's graph and runs plans on the peer (see the module)."""

    def __init__(self, peer: PlanPeer, devices: Mapping[str, Device] | None = None) -> None:
        self.peer = peer
        #: the peer's devices with block backends, as last read (:meth:`read_devices`)
        self.devices = devices

    async def read_devices(self) -> Mapping[str, Device]:
        """Ask the peer for its devices (``query-block``): removable or not, their trays
        and media, which the media edits' preflight needs and the graph does not show."""
        self.devices = devices_from_query_block(await self.peer.execute("query-block"))
        return self.devices

    def context(self) -> PlanContext:
        """What the pure planner needs: the graph, the peer's reopen command, known options."""
        snapshot = self.peer.snapshot
        if snapshot is None:
            raise Disconnected("no graph yet: not connected")
        caps = self.peer.capabilities
        return PlanContext(
            snapshot=snapshot,
            reopen_command=(caps.reopen_command if caps else None) or "blockdev-reopen",
            known_options=self.peer.added_options,
            commands=caps.commands if caps else frozenset(),
            devices=self.devices,
        )

    def plan(self, intent: Intent, *, check: bool = True) -> Plan:
        """Plan ``intent`` on the peer's graph as last read (pure; nothing is sent).
        ``check=False`` skips preflight: the plan QEMU itself is to judge."""
        return plan_intent(self.context(), intent, check=check)

    async def run(self, plan: Plan, *, check: bool = True) -> ExecutionReport:
        """Execute ``plan``, then re-read the real graph and compare with the plan's promise.

        Preflight runs again on the current graph first (unless ``check`` is False); a
        refusal raises PreflightRefused before anything is sent. A failing command
        raises CommandFailed and a failing job JobFailed (after the graph was re-read,
        so views show the real state).
        """
        if plan.refusals:
            raise PreflightRefused(plan.refusals)
        reasons = check_plan(self.context(), plan) if check else []
        if reasons:
            raise PreflightRefused(reasons)
        for step in plan.steps:
            if not isinstance(step, QmpCommand):
                self.peer.forget_job(step.job_id)
        results: list[Any] = []
        try:
            for step in plan.steps:
                if isinstance(step, QmpCommand):
                    results.append(await self.peer.execute(step.command, step.arguments))
                else:
                    results.append(await self.peer.wait_job(step.job_id, step.until))
                    if step.dismiss:
                        await self._dismiss(step.job_id)
        except (CommandFailed, JobFailed):
            with contextlib.suppress(SessionError):
                await self.peer.refresh(force=True)
            raise
        snapshot = await self.peer.refresh(force=True)
        return ExecutionReport(plan, snapshot, tuple(plan.expected.mismatches(snapshot)),
                               tuple(results))

    async def _dismiss(self, job_id: str) -> None:
        """Dismiss a concluded job; raise JobFailed if it concluded with an error."""
        jobs = await self.peer.execute("query-jobs")
        error = next((j.get("error") for j in jobs if j.get("id") == job_id), None)
        await self.peer.execute("job-dismiss", {"id": job_id})
        if error:
            raise JobFailed(job_id, "failed", str(error))

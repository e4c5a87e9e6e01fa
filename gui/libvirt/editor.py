"""Runs :class:`~gui.libvirt.plan.LibvirtPlan` s on a domain (asyncio; Qt-free).

    editor = DomainEditor(host, "vm1", session)      # session: host.session("vm1")
    plan = await editor.plan(Commit("libvirt-2-format"))    # node-names, or "vda", "vda[2]"
    report = await editor.run(plan)                  # raises LibvirtError in libvirt's words
    report.mismatches                                # libvirt's XML / QEMU's graph vs promise

Each libvirt call is made on the libvirt thread; a step that waits for a block job waits
for libvirt's own event (``VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2``), which libvirt sends once
it has updated the domain XML for the new chain — events are recorded from before the
call, so a job that finishes at once is not missed; the wait ends with an error when the
domain stops (QEMU gone, no event will come). A plan sent through QMP passthrough
runs through the session's own executor with the bridge's gate opened for its commands,
and only with ``confirmed=True`` (the user accepted ``plan.confirmation``). After every
plan, and after a failed one, the graph and the XML are read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import DomainDescription
from gui.executor import PlanExecutor
from gui.libvirt.edits import EditContext, plan_edit
from gui.libvirt.errors import LibvirtError
from gui.libvirt.host import BlockJobEvent, DomainEvent, LibvirtHost
from gui.libvirt.plan import LibvirtCall, LibvirtPlan, WaitBlockJob
from gui.session import JobFailed, PreflightRefused, Session, SessionError
from gui.session.observers import Observers

#: lifecycle events after which no block job event will come
STOPPED = frozenset({"stopped", "crashed"})


class ConfirmationRequired(SessionError):
    """A passthrough plan was run without the user's confirmation; the text is what to ask."""


@dataclass(frozen=True, slots=True)
class LibvirtReport:
    """What running a plan did: the graph and the domain XML after, and what differs."""

    plan: LibvirtPlan
    snapshot: GraphSnapshot
    description: DomainDescription
    mismatches: tuple[str, ...] = ()

    @property
    def as_expected(self) -> bool:
        return not self.mismatches


class DomainEditor:
    """Plans and runs edits of one libvirt domain (see the module docstring)."""

    def __init__(self, host: LibvirtHost, domain: str, session: Session, *,
                 job_timeout: float = 300.0) -> None:
        self.host = host
        self.domain = domain
        self.session = session
        self.job_timeout = job_timeout
        self._job_events: list[BlockJobEvent] = []
        self._job_changed = asyncio.Event()
        self._calls: Observers[LibvirtCall] = Observers("libvirt_call")
        self._stopped: str | None = None      # the lifecycle event that ended the domain
        self._unsubscribe = [host.on_block_job(self._on_job),
                             host.on_domain_event(self._on_domain_event)]

    def on_call(self, cb: Callable[[LibvirtCall], None]) -> Callable[[], None]:
        """Every libvirt call made, before it is made (for a log of what was sent)."""
        return self._calls.add(cb)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def _on_job(self, event: BlockJobEvent) -> None:
        if event.domain == self.domain:
            self._job_events.append(event)
            self._job_changed.set()

    def _on_domain_event(self, event: DomainEvent) -> None:
        if event.domain == self.domain:
            self._stopped = event.kind if event.kind in STOPPED else None
            self._job_changed.set()

    async def context(self) -> EditContext:
        """The graph (read now) and the live XML, as a plan needs them."""
        await self.session.refresh(force=True)
        description = await self.host.describe(self.domain)
        return EditContext(self.domain, description, PlanExecutor(self.session).context())

    async def plan(self, intent: Any, *, allow_passthrough: bool = False) -> LibvirtPlan:
        return plan_edit(await self.context(), intent, allow_passthrough=allow_passthrough)

    async def run(self, plan: LibvirtPlan, *, confirmed: bool = False) -> LibvirtReport:
        """Run ``plan``; raises PreflightRefused, ConfirmationRequired, LibvirtError (libvirt's
        words) or JobFailed. The graph is re-read after success and after failure."""
        if plan.refusals:
            raise PreflightRefused(plan.refusals)
        if plan.confirmation and not confirmed:
            raise ConfirmationRequired(plan.confirmation)
        try:
            if plan.passthrough is not None:
                commands = {c.command for c in plan.passthrough.commands()}
                commands.add("job-dismiss")
                with self.host.gate.allow(*commands):
                    await PlanExecutor(self.session).run(plan.passthrough)
            else:
                await self._run_calls(plan)
        except SessionError:
            with contextlib.suppress(SessionError):
                await self.session.refresh(force=True)
            raise
        snapshot = await self.session.refresh(force=True)
        description = await self.host.describe(self.domain)
        return LibvirtReport(plan, snapshot, description,
                             tuple(plan.mismatches(snapshot, description)))

    async def _run_calls(self, plan: LibvirtPlan) -> None:
        self._stopped = None
        dom = await self.host.lookup(self.domain)
        seen = len(self._job_events)
        for step in plan.steps:
            if isinstance(step, LibvirtCall):
                self._calls.emit(step)
                seen = len(self._job_events)
                await self.host.call(getattr(dom, step.method), *step.args)
            elif isinstance(step, WaitBlockJob):
                seen = await self._wait_job(step, seen)

    async def _wait_job(self, step: WaitBlockJob, seen: int) -> int:
        """Wait for an event on ``step.disk`` after index ``seen``; returns the next index."""
        deadline = time.monotonic() + self.job_timeout
        while True:
            for i in range(seen, len(self._job_events)):
                event = self._job_events[i]
                if event.disk != step.disk:
                    continue
                if event.status in step.until:
                    return i + 1
                if event.status in ("failed", "canceled"):
                    raise JobFailed(f"{event.job_type} on {step.disk}", event.status,
                                    "libvirt reported the block job " + event.status)
            seen = len(self._job_events)
            if self._stopped is not None:
                raise LibvirtError(f"domain '{self.domain}' {self._stopped} while its block "
                                   f"job on {step.disk} ran")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LibvirtError(f"no block job event for {step.disk} within "
                                   f"{self.job_timeout:g} s")
            self._job_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._job_changed.wait()

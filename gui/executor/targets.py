"""Where ``blockgraph plan`` plans and runs an edit: the seam for other kinds of peer.

A :class:`PlanTarget` turns an intent into a plan on the peer's graph, says it as the
text the command prints, and runs it. :class:`QmpTarget` is the one for any QMP peer —
QEMU, qemu-storage-daemon, ``blockgraph serve`` — through a session and the
:class:`~gui.executor.PlanExecutor`. A libvirt domain is the other:
:class:`gui.libvirt.target.LibvirtTarget`, over the domain editor, prints virsh commands
instead of qmp-shell; the command's front end does not change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.graph.snapshot import GraphSnapshot, anonymous_backend_key
from gui.executor.allocation import local_allocation
from gui.executor.changes import describe_changes
from gui.executor.executor import PlanExecutor
from gui.planner.consequences import consequences_of, dangers
from gui.planner.intents import MEDIA_INTENTS
from gui.session import Session


class PlanLike(Protocol):
    """What the front end needs of a plan, whoever made it."""

    @property
    def refusals(self) -> tuple[Exception, ...]: ...

    @property
    def summary(self) -> str: ...

    @property
    def warnings(self) -> tuple[str, ...]: ...

    @property
    def irreversible(self) -> str | None: ...


@dataclass(frozen=True)
class Applied:
    """What running a plan did: the changes, and where the graph differs from the plan."""

    changes: tuple[str, ...] = ()
    mismatches: tuple[str, ...] = ()
    snapshot: GraphSnapshot | None = field(default=None, compare=False)


class PlanTarget(Protocol):
    """A peer that plans and runs edits (see the module)."""

    label: str

    async def plan(self, intent: Any, *, check: bool = True) -> PlanLike: ...

    async def consequences(self, plan: PlanLike) -> tuple[list[str], list[str]]: ...

    def script(self, plan: PlanLike) -> str: ...

    async def apply(self, plan: PlanLike, *, check: bool = True) -> Applied: ...

    async def close(self) -> None: ...


class QmpTarget:
    """A QMP peer: plans are QMP, printed as qmp-shell, run by the plan executor."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.executor = PlanExecutor(session)
        self.label = str(getattr(session.endpoint, "label", "peer"))

    @classmethod
    async def connect(cls, address: str) -> QmpTarget:
        session = Session(address, auto_reconnect=False, poll_interval=None)
        try:
            await session.connect()
        except BaseException:
            await session.close()
            raise
        return cls(session)

    async def plan(self, intent: Any, *, check: bool = True) -> Any:
        await self.session.refresh(force=True)
        if isinstance(intent, MEDIA_INTENTS) or self.executor.devices is None:
            await self.executor.read_devices()
        return self.executor.plan(intent, check=check)

    async def consequences(self, plan: Any) -> tuple[list[str], list[str]]:
        """What ``plan`` changes for each reader (the editor's review, as lines) and the
        warnings for disks and exports whose data changes under them."""
        ctx = self.executor.context()
        labels = await self._export_labels()
        found = await asyncio.to_thread(consequences_of, ctx, plan, local_allocation, labels)
        warn = dangers(found, plan.intent, "")
        if warn and self.session.capabilities is not None \
                and self.session.capabilities.has("query-status"):
            status = await self.session.execute("query-status")
            warn = dangers(found, plan.intent, str((status or {}).get("status", "")))
        return found.lines(), warn

    async def _export_labels(self) -> dict[str, str]:
        """Exports named by their id, as the editor names them."""
        caps = self.session.capabilities
        if caps is None or not caps.has("query-block-exports"):
            return {}
        return {anonymous_backend_key(str(e.get("node-name", ""))): f"export {e.get('id')}"
                for e in await self.session.execute("query-block-exports") or []}

    def script(self, plan: Any) -> str:
        return str(plan.as_qmp_shell())

    async def apply(self, plan: Any, *, check: bool = True) -> Applied:
        before = self.session.snapshot
        report = await self.executor.run(plan, check=check)
        changes = describe_changes(before, report.snapshot) if before is not None else []
        return Applied(tuple(changes), tuple(report.mismatches), report.snapshot)

    async def close(self) -> None:
        await self.session.close()


def header(plan: PlanLike) -> Sequence[str]:
    """The comment lines that head a printed plan: what it does and what to know."""
    lines = [f"# {plan.summary}"]
    lines += [f"# warning: {w}" for w in plan.warnings]
    if plan.irreversible and plan.irreversible not in ("refused", "already an undo step"):
        lines.append(f"# cannot be undone: {plan.irreversible}")
    return lines

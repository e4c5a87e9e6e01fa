"""A libvirt domain as the target of ``blockgraph plan`` (:mod:`gui.executor.targets`).

    target = await LibvirtTarget.connect("qemu:///system", "vm1")
    plan = await target.plan(Stream("vda"))          # node-names, or vda / vda[2] / sda
    print(target.script(plan))                       # virsh commands
    applied = await target.apply(plan)               # libvirt's APIs, waits on its events

Plans are :class:`~gui.libvirt.plan.LibvirtPlan` s made by the
:class:`~gui.libvirt.editor.DomainEditor`: libvirt's own APIs where it has one, so
``virsh domblklist`` and ``virsh snapshot-list`` show the result. Nodes and devices may
be named by libvirt's disk targets as virsh users know them (``vda`` is its active
layer, ``vda[3]`` a layer by libvirt's index, ``sda`` the CD-ROM). An edit libvirt has
no API for is refused, or sent through QMP passthrough when the target was made with
``passthrough=True`` — the user's explicit acceptance of
:data:`~gui.libvirt.edits.PASSTHROUGH_WARNING`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import DomainDescription
from gui.executor.changes import describe_changes
from gui.executor.targets import Applied, QmpTarget
from gui.libvirt.editor import DomainEditor
from gui.libvirt.edits import (
    AbortJob,
    BlockCopy,
    LibvirtPlan,
    PivotJob,
    locate,
    plan_edit,
    resolve_name,
)
from gui.libvirt.errors import LibvirtError
from gui.libvirt.host import LibvirtHost, domain_address
from gui.planner.intents import ChangeMedium
from gui.session import Session

#: intent fields that name a node (a disk target is resolved to one)
_NODE_FIELDS = ("node", "top", "base", "backing")


def job_for(graph: GraphSnapshot, description: DomainDescription, name: str) -> str:
    """A job id for ``name``: a job's id, or a disk target whose chain a job runs on
    (libvirt allows one block job per disk, and virsh names it by the disk)."""
    if f"job:{name}" in graph.nodes:
        return name
    places = locate(graph, description)
    for key in graph.nodes:
        if key.startswith("job:") and any(
                (place := places.get(e.child)) is not None and place.disk.target == name
                for e in graph.children(key)):
            return key.removeprefix("job:")
    raise rules.RuleViolation(f"Block job '{name}' not found")


class LibvirtTarget:
    """One domain of one libvirt connection (see the module)."""

    def __init__(self, host: LibvirtHost, domain: str, session: Session, *,
                 passthrough: bool = False) -> None:
        self.host = host
        self.domain = domain
        self.session = session
        self.passthrough = passthrough
        self.editor = DomainEditor(host, domain, session)
        self.label = domain_address(host.uri, domain)

    @classmethod
    async def connect(cls, uri: str, domain: str, *, passthrough: bool = False
                      ) -> LibvirtTarget:
        """Open ``uri`` and a session on ``domain``; LibvirtError in libvirt's words."""
        host = LibvirtHost(uri)
        session: Session | None = None
        try:
            await host.open()
            lookup = await host.domains()
            if domain not in {d.name for d in lookup}:
                raise LibvirtError(f"Domain not found: no domain with matching name "
                                   f"'{domain}'")
            session = host.session(domain, auto_reconnect=False)
            await session.connect()
        except BaseException:
            if session is not None:
                await session.close()
            await host.close()
            raise
        return cls(host, domain, session, passthrough=passthrough)

    async def plan(self, intent: Any, *, check: bool = True) -> LibvirtPlan:
        """``intent`` planned as libvirt calls; names resolved first (a name that is
        neither a node nor a disk target is refused as QEMU would refuse it)."""
        ctx = await self.editor.context()
        try:
            intent = self._resolved(intent, ctx)
        except rules.RuleViolation as exc:
            return LibvirtPlan(intent, self.domain, "", refusals=(exc,), irreversible="refused")
        return plan_edit(ctx, intent, allow_passthrough=self.passthrough)

    @staticmethod
    def _resolved(intent: Any, ctx: Any) -> Any:
        if isinstance(intent, AbortJob | PivotJob):
            return type(intent)(job_for(ctx.graph, ctx.description, intent.job))
        if isinstance(intent, ChangeMedium) or not dataclasses.is_dataclass(intent):
            return intent                    # devices: libvirt's targets are understood there
        if isinstance(intent, type):         # is_dataclass holds for the class itself too
            return intent
        changes = {}
        for field in _NODE_FIELDS:
            value = getattr(intent, field, None)
            if isinstance(value, str):
                changes[field] = resolve_name(ctx.graph, ctx.description, value)
        return dataclasses.replace(intent, **changes) if changes else intent

    async def consequences(self, plan: Any) -> tuple[list[str], list[str]]:
        """What the edit changes for each disk, and the warnings, as for the same edit on
        a QMP peer: libvirt's APIs run the QMP commands the planner plans for it (a
        passthrough plan is that plan). Job control and a copy change no disk's data."""
        if not plan.ok or isinstance(plan.intent, AbortJob | PivotJob | BlockCopy):
            return [], []
        qmp = QmpTarget(self.session)
        qmp_plan = plan.passthrough or await qmp.plan(plan.intent, check=False)
        return await qmp.consequences(qmp_plan)

    def script(self, plan: Any) -> str:
        """virsh commands; a passthrough plan says first what the user accepted."""
        text = str(plan.as_virsh())
        if plan.confirmation:
            text = "\n".join(["# confirmed: " + plan.confirmation, text])
        return text

    async def apply(self, plan: Any, *, check: bool = True) -> Applied:
        before = self.session.snapshot
        report = await self.editor.run(plan, confirmed=self.passthrough)
        changes = describe_changes(before, report.snapshot) if before is not None else []
        return Applied(tuple(changes), report.mismatches, report.snapshot)

    async def close(self) -> None:
        self.editor.close()
        try:
            await self.session.close()
        finally:
            await self.host.close()

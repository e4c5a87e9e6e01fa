"""Trays of removable devices (CD-ROMs, floppies): opened and closed.

Changing and ejecting the medium is :func:`gui.planner.nodes.plan_medium`; the tray
itself is not part of the block graph, so these plans promise no graph facts (the
editor reads trays with ``query-block``). Each undoes the other.
"""

from __future__ import annotations

from gui.planner.context import PlanContext
from gui.planner.intents import CloseTray, OpenTray
from gui.planner.plan import Plan, QmpCommand
from gui.planner.summary import describe


def plan_open_tray(ctx: PlanContext, intent: OpenTray) -> Plan:
    args = {"id": intent.device, **({"force": True} if intent.force else {})}
    close = CloseTray(intent.device)
    inverse = Plan(intent=close, summary=f"Undo: {describe(ctx.snapshot, close).lower()}",
                   steps=(QmpCommand("blockdev-close-tray", {"id": intent.device}),),
                   irreversible="already an undo step")
    return Plan(intent=intent, summary=describe(ctx.snapshot, intent),
                steps=(QmpCommand("blockdev-open-tray", args),),
                preconditions=(f"device {intent.device} has a tray",), inverse=inverse)


def plan_close_tray(ctx: PlanContext, intent: CloseTray) -> Plan:
    opened = OpenTray(intent.device)
    inverse = Plan(intent=opened, summary=f"Undo: {describe(ctx.snapshot, opened).lower()}",
                   steps=(QmpCommand("blockdev-open-tray", {"id": intent.device}),),
                   irreversible="already an undo step")
    return Plan(intent=intent, summary=describe(ctx.snapshot, intent),
                steps=(QmpCommand("blockdev-close-tray", {"id": intent.device}),),
                preconditions=(f"device {intent.device} has a tray",), inverse=inverse)

"""The planner: a pure function from (graph snapshot, intent) to a :class:`Plan`.

No I/O and no Qt: the same call answers a menu action, a drag preview and a test.
Preflight (:mod:`gui.planner.preflight`, i.e. the engine's rules module) runs first; a
refused intent yields a plan with ``refusals`` and no steps. Each kind of edit is
planned by its own module: :mod:`~gui.planner.links`, :mod:`~gui.planner.snapshots`,
:mod:`~gui.planner.jobs`, :mod:`~gui.planner.nodes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gui.planner.context import PlanContext
from gui.planner.intents import (
    LINK_INTENTS,
    AddImage,
    ChangeMedium,
    CloseTray,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    InsertMedium,
    OpenTray,
    RemoveMedium,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.jobs import plan_commit, plan_stream
from gui.planner.links import plan_detach, plan_links, plan_read_only, plan_set_backing
from gui.planner.nodes import plan_add, plan_delete, plan_medium, plan_tray
from gui.planner.plan import Plan, refused
from gui.planner.preflight import check as preflight_check
from gui.planner.preflight import check_staged
from gui.planner.snapshots import plan_snapshot, plan_staged_snapshots
from gui.planner.summary import describe


def plan_intent(ctx: PlanContext, intent: Any, *, check: bool = True) -> Plan:
    """Plan ``intent`` on ``ctx.snapshot``; refused plans carry typed reasons, no steps.

    ``check=False`` skips preflight (to show or send what QEMU itself would refuse).
    """
    reasons = preflight_check(ctx, intent) if check else []
    if reasons:
        return refused(intent, describe(ctx.snapshot, intent), reasons)
    builder = _BUILDERS.get(type(intent))
    if builder is None:
        raise TypeError(f"not an intent: {intent!r}")
    return builder(ctx, intent)


def check_plan(ctx: PlanContext, plan: Plan) -> list[Exception]:
    """Preflight an already built plan again (the graph may have changed since)."""
    intent = plan.intent
    if isinstance(intent, tuple | list):
        return check_staged(ctx, list(intent))
    return preflight_check(ctx, intent)


def plan_staged(ctx: PlanContext, intents: Sequence[Any]) -> Plan:
    """Several link/flag edits as ONE atomic ``blockdev-reopen`` (preview it as JSON);
    several external snapshots as their image creations followed by ONE ``transaction``
    of ``blockdev-snapshot`` actions (all overlays become active together, or none).

    Other edits run as jobs or separate commands and are planned one by one.
    """
    if intents and all(isinstance(i, ExternalSnapshot) for i in intents):
        return plan_staged_snapshots(ctx, intents)
    others = [i for i in intents if not isinstance(i, LINK_INTENTS)]
    if others:
        raise ValueError("only link and read-only edits (or only snapshots) can be staged, "
                         f"not {others[0]!r}")
    reasons = check_staged(ctx, list(intents))
    summary = "; ".join(describe(ctx.snapshot, i) for i in intents)
    if reasons:
        return refused(tuple(intents), summary, reasons)
    return plan_links(ctx, list(intents), summary)


_BUILDERS: dict[type, Any] = {
    SetBacking: plan_set_backing,
    DetachBacking: plan_detach,
    SetReadOnly: plan_read_only,
    ExternalSnapshot: plan_snapshot,
    Stream: plan_stream,
    Commit: plan_commit,
    Delete: plan_delete,
    AddImage: plan_add,
    ChangeMedium: plan_medium,
    OpenTray: plan_tray,
    CloseTray: plan_tray,
    RemoveMedium: plan_tray,
    InsertMedium: plan_tray,
}

"""Several images opened as one edit: one review, in the order given, one undo entry.

``blockgraph a.qcow2 b.qcow2 c.qcow2`` opens three images. Run as three edits they
asked three times, and the reviews came up in reverse order (each edit's dialog opened
on top of the one before). Here each image is planned by the planner
(:class:`~gui.planner.intents.AddImage`) and the plans are sent one after another as one
plan, reviewed once; its inverse closes them again, last first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from gui.planner import PlanContext, plan_intent
from gui.planner.intents import AddImage
from gui.planner.plan import Expectation, Plan, refused


def _merged(expectations: Sequence[Expectation]) -> Expectation:
    out = Expectation()
    for e in expectations:
        out = out.merged(e)
    return out


def open_images_plan(ctx: PlanContext, intents: Sequence[AddImage]) -> Plan:
    """One plan that opens every image of ``intents``, in order."""
    names = ", ".join(os.path.basename(i.filename) for i in intents)
    summary = f"Open {len(intents)} images: {names}"
    plans = [plan_intent(ctx, i) for i in intents]
    bad = next((p for p in plans if not p.ok), None)
    if bad is not None:
        return refused(tuple(intents), summary, bad.refusals)
    inverses = [p.inverse for p in reversed(plans) if p.inverse is not None]
    inverse = Plan(intent=tuple(p.intent for p in inverses), summary=f"Undo: {summary}",
                   steps=tuple(s for p in inverses for s in p.steps),
                   expected=_merged([p.expected for p in inverses]),
                   irreversible="already an undo step") if len(inverses) == len(plans) else None
    added = {k: v for p in plans for k, v in p.added.items()}
    return Plan(intent=tuple(intents), summary=summary,
                steps=tuple(s for p in plans for s in p.steps),
                preconditions=tuple(c for p in plans for c in p.preconditions),
                expected=_merged([p.expected for p in plans]), inverse=inverse,
                irreversible=None if inverse is not None else "an image cannot be closed again",
                added=added)

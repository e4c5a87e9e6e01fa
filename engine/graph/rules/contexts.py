"""QEMU 7.2's rules for iothreads (AioContexts) when links join parts of the graph.

Every node, BlockBackend and job runs in one AioContext: the main loop (``""``) or an
iothread (its id). Nodes linked to each other share theirs, so a link between two
parts in different contexts moves one part entirely: first the new child's part
into the parent's context, else the parent's part into the child's
(``bdrv_attach_child_common``). A part cannot move when it holds a BlockBackend a
guest device uses (``Cannot change iothread of active block backend``); a drive
without a device, a job's own backends and jobs move along.

The view tells contexts through ``NodeInfo.iothread`` and, for BlockBackends, whether
a device pins theirs (``info["fixed-context"]``). A view built from QMP replies knows
none (QEMU does not report them): everything is then in the main loop, and no rule
here refuses anything.
"""

from __future__ import annotations

from engine.graph.rules.errors import RuleViolation
from engine.graph.view import GraphView

ACTIVE_BACKEND = "Cannot change iothread of active block backend"


def context_of(view: GraphView, key: str) -> str:
    info = view.node_info(key)
    return info.iothread if info is not None else ""


def plan_context_change(view: GraphView, start: str, context: str,
                        mover: str | None = None) -> list[str]:
    """QEMU's bdrv_try_change_aio_context: every vertex (node, backend, job) that moves
    into ``context`` with ``start`` — its whole connected part of the graph — or
    :class:`RuleViolation` when one of them cannot move. ``mover``: the backend whose
    device asks for the move (it moves, whatever pins it)."""
    moved: list[str] = []
    seen: set[str] = set()
    stack = [start]
    while stack:
        key = stack.pop()
        if key in seen or context_of(view, key) == context:
            continue
        seen.add(key)
        info = view.node_info(key)
        if info is None:
            continue
        if info.kind == "block-backend":
            if info.info.get("fixed-context") and key != mover:
                raise RuleViolation(ACTIVE_BACKEND)
            moved.append(key)
            continue       # the backend moves by itself; its medium is what asked
        moved.append(key)
        if info.kind == "block-job":
            stack.extend(e.child for e in reversed(view.children(key)))
            continue
        # parents first, then children, as QEMU walks them (stack: pushed in reverse)
        stack.extend(e.child for e in reversed(view.children(key)))
        stack.extend(e.parent for e in reversed(view.parents(key)))
    return moved


def plan_attach_context(view: GraphView, parent: str, child: str) -> tuple[str, list[str]]:
    """A new link ``parent -> child`` (not yet in the view): the context both sides end
    up in and what moves into it (nothing when they already share one)."""
    parent_context, child_context = context_of(view, parent), context_of(view, child)
    if parent_context == child_context:
        return parent_context, []
    try:
        return parent_context, plan_context_change(view, child, parent_context)
    except RuleViolation as first:
        try:
            return child_context, plan_context_change(view, parent, child_context)
        except RuleViolation:
            raise first from None

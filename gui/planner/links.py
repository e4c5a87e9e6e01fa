"""Link and flag edits (backing re-pointed or dropped, read-only): ``blockdev-reopen``.

A reopen resets every option it is not given, so each touched node is reopened with its
full option set (:mod:`gui.planner.options`); several edits go into one atomic
``blockdev-reopen`` (one ``x-blockdev-reopen`` per node on older peers). The inverse is
planned on the graph the edit leaves behind.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.planner.context import PlanContext
from gui.planner.intents import DetachBacking, SetBacking, SetReadOnly
from gui.planner.options import current_options
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand
from gui.planner.simulate import simulate
from gui.planner.summary import describe


def reopen_entries(ctx: PlanContext, intents: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """One full option set per node touched by link/flag intents, applied in order."""
    graph = ctx.snapshot
    entries: dict[str, dict[str, Any]] = {}
    for intent in intents:
        node = intent.node
        opts = entries.get(node) or current_options(graph, node, ctx.known_options)
        match intent:
            case SetBacking(_, backing):
                opts["backing"] = graph.nodes[backing].name
            case DetachBacking(_):
                opts["backing"] = None
            case SetReadOnly(_, ro):
                opts["read-only"] = ro
        entries[node] = opts
    # A format node made read-write needs a writable file child: reopen named file
    # children read-write in the same transaction (auto-named ones follow the parent).
    for node, opts in list(entries.items()):
        if opts.get("read-only") is False and graph.nodes[node].read_only:
            file_key = graph.child(node, "file")
            if file_key is None:
                continue
            child = graph.nodes[file_key]
            if not child.read_only:
                continue
            if child.auto_named:
                inline = _inline_child(ctx, file_key)
                if inline is not None:
                    opts["file"] = inline
            elif file_key not in entries:
                child_opts = current_options(graph, file_key, ctx.known_options)
                child_opts["read-only"] = False
                entries[file_key] = child_opts
    return entries


def _inline_child(ctx: PlanContext, key: str) -> dict[str, Any] | None:
    """An auto-named child as a nested dict without node-name, so it follows its parent."""
    opts = current_options(ctx.snapshot, key, ctx.known_options)
    opts.pop("node-name", None)
    opts.pop("read-only", None)
    return opts


def reopen_commands(ctx: PlanContext, entries: Mapping[str, Mapping[str, Any]]) -> list[QmpCommand]:
    """``blockdev-reopen`` with every entry (atomic), or one ``x-blockdev-reopen`` each."""
    options = [copy.deepcopy(dict(o)) for o in entries.values()]
    if ctx.reopen_command == "x-blockdev-reopen":
        return [QmpCommand("x-blockdev-reopen", o) for o in options]
    return [QmpCommand("blockdev-reopen", {"options": options})]


def _link_facts(graph: GraphSnapshot, intents: Sequence[Any]) -> Expectation:
    edges: dict[tuple[str, str], EdgeFact] = {}
    ro: dict[str, bool] = {}
    for intent in intents:
        match intent:
            case SetBacking(node, backing):
                edges[(node, "backing")] = EdgeFact(node, "backing", backing)
            case DetachBacking(node):
                edges[(node, "backing")] = EdgeFact(node, "backing", None)
            case SetReadOnly(node, value):
                ro[node] = value
    return Expectation(edges=tuple(edges.values()), read_only=tuple(ro.items()))


def _inverse_links(graph: GraphSnapshot, intents: Sequence[Any]) -> list[Any]:
    """The link/flag intents that restore what ``intents`` change, in reverse order."""
    inverse: list[Any] = []
    for intent in reversed(intents):
        match intent:
            case SetBacking(node) | DetachBacking(node):
                old = graph.backing(node)
                inverse.append(SetBacking(node, old) if old else DetachBacking(node))
            case SetReadOnly(node):
                inverse.append(SetReadOnly(node, graph.nodes[node].read_only))
    return inverse


def plan_links(ctx: PlanContext, intents: Sequence[Any], summary: str) -> Plan:
    """Plan link/flag intents as one reopen; the inverse reopens the old state."""
    graph = ctx.snapshot
    entries = reopen_entries(ctx, intents)
    inverse_intents = _inverse_links(graph, intents)
    after = simulate(graph, intents)
    inv_ctx = PlanContext(after, ctx.reopen_command, _known_after(ctx, entries), ctx.commands)
    inv_entries = reopen_entries(inv_ctx, inverse_intents)
    inverse = Plan(
        intent=tuple(inverse_intents) if len(inverse_intents) > 1 else inverse_intents[0],
        summary="Undo: " + summary,
        steps=tuple(reopen_commands(inv_ctx, inv_entries)),
        expected=_link_facts(after, inverse_intents),
        irreversible="already an undo step",
        reopened=inv_entries,
    )
    warnings: tuple[str, ...] = ()
    if ctx.reopen_command == "x-blockdev-reopen" and len(entries) > 1:
        warnings = ("this peer only has x-blockdev-reopen: the nodes are reopened one "
                    "by one, not atomically",)
    return Plan(
        intent=tuple(intents) if len(intents) > 1 else intents[0],
        summary=summary,
        warnings=warnings,
        steps=tuple(reopen_commands(ctx, entries)),
        preconditions=tuple(f"{n} exists and is reopenable" for n in entries),
        expected=_link_facts(graph, intents),
        inverse=inverse,
        reopened=entries,
    )


def _known_after(ctx: PlanContext, entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    known = dict(ctx.known_options)
    known.update(entries)
    return known


def plan_set_backing(ctx: PlanContext, intent: SetBacking) -> Plan:
    return plan_links(ctx, [intent], describe(ctx.snapshot, intent))


def plan_detach(ctx: PlanContext, intent: DetachBacking) -> Plan:
    return plan_links(ctx, [intent], describe(ctx.snapshot, intent))


def plan_read_only(ctx: PlanContext, intent: SetReadOnly) -> Plan:
    return plan_links(ctx, [intent], describe(ctx.snapshot, intent))

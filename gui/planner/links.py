"""Link and flag edits (backing re-pointed or dropped, read-only): ``blockdev-reopen``.

A reopen resets every option it is not given, so each touched node is reopened with its
full option set (:mod:`gui.planner.options`); several edits go into one atomic
``blockdev-reopen`` (one ``x-blockdev-reopen`` per node on older peers). The inverse is
planned on the graph the edit leaves behind.

QEMU cannot reopen a node by an auto-generated name (``#block258`` is not one of its
options), but it reopens a child given as a nested dict without ``node-name``. So an
edit of an auto-named node reopens the nearest ancestor that has a name of its own,
with the path down to the node written out as nested dicts (:func:`reopen_route`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.planner.context import PlanContext
from gui.planner.intents import DetachBacking, SetBacking, SetReadOnly
from gui.planner.options import CHILD_MEMBERS, current_options
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand
from gui.planner.simulate import simulate
from gui.planner.summary import describe


@dataclass(frozen=True, slots=True)
class Route:
    """How a reopen reaches ``node``: the entry for ``entry`` (a node with a name of its
    own), then down through the child ``roles`` as nested dicts (empty: by name)."""

    entry: str
    roles: tuple[str, ...] = ()
    node: str = ""

    @property
    def by_name(self) -> bool:
        return not self.roles


def reopen_route(graph: GraphSnapshot, key: str) -> Route:
    """The route to reopen ``key``: by its name, or from its nearest ancestor with a
    name of its own through links QEMU made from options or image headers (the first
    ``file`` or ``backing`` parent at each step). An auto-named node without such an
    ancestor (a CD-ROM's medium) is named as it is, which QEMU refuses."""
    roles: list[str] = []
    cur = key
    seen = {key}
    while cur in graph.nodes and graph.nodes[cur].auto_named:
        ups = [e for e in graph.parents(cur) if e.role in CHILD_MEMBERS
               and e.parent in graph.nodes and graph.nodes[e.parent].kind == "block-node"]
        ups.sort(key=lambda e: (e.role not in ("file", "backing"),
                                graph.nodes[e.parent].auto_named))
        if not ups or ups[0].parent in seen or graph.nodes[ups[0].parent].implicit:
            return Route(key, (), key)
        roles.append(ups[0].role)
        cur = ups[0].parent
        seen.add(cur)
    return Route(cur, tuple(reversed(roles)), key)


def _options_of(ctx: PlanContext, key: str) -> dict[str, Any]:
    if key not in ctx.snapshot.nodes:           # unknown: QEMU will say so by name
        return {"driver": "qcow2", "node-name": key}
    return current_options(ctx.snapshot, key, ctx.known_options)


def _target(ctx: PlanContext, entries: dict[str, dict[str, Any]], route: Route
            ) -> dict[str, Any]:
    """The option dict that describes ``route.node`` inside ``entries`` (created on
    the way: the entry, then each child on the route as a nested dict)."""
    graph = ctx.snapshot
    opts = entries.get(route.entry) or _options_of(ctx, route.entry)
    entries[route.entry] = opts
    cur = route.entry
    for role in route.roles:
        child = graph.child(cur, role)
        assert child is not None
        value = opts.get(role)
        if not isinstance(value, dict):
            value = _options_of(ctx, child)
            value.pop("node-name", None)
            opts[role] = value
        opts, cur = value, child
    return opts


def reopen_entries(ctx: PlanContext, intents: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """One full option set per reopened node (entry), the intents applied in order."""
    graph = ctx.snapshot
    entries: dict[str, dict[str, Any]] = {}
    for intent in intents:
        opts = _target(ctx, entries, reopen_route(graph, intent.node))
        match intent:
            case SetBacking(_, backing):
                opts["backing"] = graph.nodes[backing].name if backing in graph.nodes \
                    else backing
            case DetachBacking(_):
                opts["backing"] = None
            case SetReadOnly(node, ro):
                opts["read-only"] = ro
                if ro is False:
                    _writable_file(ctx, entries, node, opts)
    return entries


def _writable_file(ctx: PlanContext, entries: dict[str, dict[str, Any]], node: str,
                   opts: dict[str, Any]) -> None:
    """A format node made read-write needs a writable ``file`` child: an auto-named one
    goes along as a nested dict (it follows its parent), a named one is reopened
    read-write in the same transaction."""
    graph = ctx.snapshot
    if node not in graph.nodes or not graph.nodes[node].read_only:
        return
    file_key = graph.child(node, "file")
    if file_key is None or not graph.nodes[file_key].read_only:
        return
    child = graph.nodes[file_key]
    if child.auto_named:
        if not isinstance(opts.get("file"), dict):
            inline = current_options(graph, file_key, ctx.known_options)
            inline.pop("node-name", None)
            inline.pop("read-only", None)
            opts["file"] = inline
    elif file_key not in entries:
        child_opts = current_options(graph, file_key, ctx.known_options)
        child_opts["read-only"] = False
        entries[file_key] = child_opts


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


def released(graph: GraphSnapshot, intents: Sequence[Any]) -> list[str]:
    """Auto-named nodes a link change leaves without users: QEMU closes them, so the
    change cannot be undone (nothing can name them to link them again)."""
    out: list[str] = []
    for intent in intents:
        if not isinstance(intent, SetBacking | DetachBacking) or intent.node not in graph.nodes:
            continue
        old = graph.backing(intent.node)
        if old is None or not graph.nodes[old].auto_named or graph.nodes[old].implicit:
            continue
        if isinstance(intent, SetBacking) and intent.backing == old:
            continue
        others = [e for e in graph.parents(old)
                  if not (e.parent == intent.node and e.role == "backing")]
        if not others:
            out.append(old)
    return out


def plan_links(ctx: PlanContext, intents: Sequence[Any], summary: str) -> Plan:
    """Plan link/flag intents as one reopen; the inverse reopens the old state."""
    graph = ctx.snapshot
    entries = reopen_entries(ctx, intents)
    warnings: tuple[str, ...] = ()
    if ctx.reopen_command == "x-blockdev-reopen" and len(entries) > 1:
        warnings = ("this peer only has x-blockdev-reopen: the nodes are reopened one "
                    "by one, not atomically",)
    gone = released(graph, intents)
    inverse: Plan | None = None
    why: str | None = None
    if gone:
        why = (f"{', '.join(gone)} {'has' if len(gone) == 1 else 'have'} no name of "
               f"{'its' if len(gone) == 1 else 'their'} own and nothing else uses "
               f"{'it' if len(gone) == 1 else 'them'}: QEMU closes "
               f"{'it' if len(gone) == 1 else 'them'}")
    elif all(i.node in graph.nodes for i in intents):
        inverse = _inverse(ctx, intents, entries, summary)
    return Plan(
        intent=tuple(intents) if len(intents) > 1 else intents[0],
        summary=summary,
        warnings=warnings,
        steps=tuple(reopen_commands(ctx, entries)),
        preconditions=tuple(f"{n} exists and is reopenable" for n in entries),
        expected=Expectation(
            edges=_link_facts(graph, intents).edges,
            read_only=_link_facts(graph, intents).read_only,
            absent=tuple(gone)),
        inverse=inverse,
        irreversible=why,
        reopened=entries,
    )


def _inverse(ctx: PlanContext, intents: Sequence[Any], entries: Mapping[str, Any],
             summary: str) -> Plan:
    graph = ctx.snapshot
    inverse_intents = _inverse_links(graph, intents)
    after = simulate(graph, intents)
    inv_ctx = PlanContext(after, ctx.reopen_command, _known_after(ctx, entries), ctx.commands,
                          ctx.devices)
    inv_entries = reopen_entries(inv_ctx, inverse_intents)
    return Plan(
        intent=tuple(inverse_intents) if len(inverse_intents) > 1 else inverse_intents[0],
        summary="Undo: " + summary,
        steps=tuple(reopen_commands(inv_ctx, inv_entries)),
        expected=_link_facts(after, inverse_intents),
        irreversible="already an undo step",
        reopened=inv_entries,
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

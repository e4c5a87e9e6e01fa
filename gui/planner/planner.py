"""The planner: a pure function from (graph snapshot, intent) to a :class:`Plan`.

No I/O and no Qt: the same call answers a menu action, a drag preview and a test.
Preflight (:mod:`gui.planner.preflight`, i.e. the engine's rules module) runs first; a
refused intent yields a plan with ``refusals`` and no steps.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.planner import preflight
from gui.planner.intents import (
    LINK_INTENTS,
    AddImage,
    ChangeMedium,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.options import current_options, inline_options
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand, WaitJob, refused


@dataclass(frozen=True, slots=True)
class PlanContext:
    """Everything a plan depends on: the graph and what the session knows about the peer."""

    snapshot: GraphSnapshot
    reopen_command: str = "blockdev-reopen"
    #: node-name -> options this client sent for it (blockdev-add / blockdev-reopen)
    known_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the peer's commands (``query-commands``); empty means "not known, assume QEMU 7.2"
    commands: frozenset[str] = frozenset()


def plan_intent(ctx: PlanContext, intent: Any, *, check: bool = True) -> Plan:
    """Plan ``intent`` on ``ctx.snapshot``; refused plans carry typed reasons, no steps.

    ``check=False`` skips preflight (to show or send what QEMU itself would refuse).
    """
    reasons = preflight.check(ctx, intent) if check else []
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
        return preflight.check_staged(ctx, list(intent))
    return preflight.check(ctx, intent)


def describe(graph: GraphSnapshot, intent: Any) -> str:
    """The one-line human summary of an intent."""
    match intent:
        case SetBacking(node, backing):
            old = graph.backing(node) if node in graph.nodes else None
            return (f"Re-point the backing of {node} from {old} to {backing}" if old
                    else f"Set the backing of {node} to {backing}")
        case DetachBacking(node):
            old = graph.backing(node) if node in graph.nodes else None
            return f"Detach {node} from its backing {old}" if old else f"Detach {node}'s backing"
        case SetReadOnly(node, ro):
            return f"Make {node} {'read-only' if ro else 'read-write'}"
        case ExternalSnapshot(node, overlay, filename):
            return f"Snapshot {node} into new overlay {overlay} ({filename})"
        case Stream(node, base):
            source = "the whole chain" if base is None else "above " + base
            return f"Stream into {node} from {source}"
        case Commit(top, base):
            return f"Commit {top} into {base or 'the bottom of its chain'}"
        case Delete(node):
            return f"Delete node {node}"
        case AddImage(name, filename, fmt, with_chain):
            chain = "with its backing chain" if with_chain else "without backing"
            return f"Open {filename} ({fmt}) as {name}, {chain}"
        case ChangeMedium(device, None):
            return f"Eject the medium of {device}"
        case ChangeMedium(device, filename):
            return f"Insert {filename} into {device}"
    return repr(intent)


# -- link changes: blockdev-reopen ------------------------------------------------------

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


def simulate(graph: GraphSnapshot, intents: Sequence[Any]) -> GraphSnapshot:
    """The graph after link/flag intents (for staging and inverse planning)."""
    from dataclasses import replace

    from engine.graph.snapshot import EdgeInfo

    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    for intent in intents:
        match intent:
            case SetBacking(node, backing):
                edges = [e for e in edges if not (e.parent == node and e.role == "backing")]
                edges.append(EdgeInfo(node, backing, "backing"))
            case DetachBacking(node):
                edges = [e for e in edges if not (e.parent == node and e.role == "backing")]
            case SetReadOnly(node, ro):
                nodes[node] = replace(nodes[node], read_only=ro)
                # an auto-named (inline) file child follows its parent, as in QEMU
                for e in edges:
                    if e.parent == node and e.role == "file" and nodes[e.child].auto_named:
                        nodes[e.child] = replace(nodes[e.child], read_only=ro)
    return GraphSnapshot(nodes.values(), edges)


def _plan_set_backing(ctx: PlanContext, intent: SetBacking) -> Plan:
    return plan_links(ctx, [intent], describe(ctx.snapshot, intent))


def _plan_detach(ctx: PlanContext, intent: DetachBacking) -> Plan:
    return plan_links(ctx, [intent], describe(ctx.snapshot, intent))


def _plan_read_only(ctx: PlanContext, intent: SetReadOnly) -> Plan:
    return plan_links(ctx, [intent], describe(ctx.snapshot, intent))


def plan_staged(ctx: PlanContext, intents: Sequence[Any]) -> Plan:
    """Several link/flag edits as ONE atomic ``blockdev-reopen`` (preview it as JSON);
    several external snapshots as their image creations followed by ONE ``transaction``
    of ``blockdev-snapshot`` actions (all overlays become active together, or none).

    Other edits run as jobs or separate commands and are planned one by one.
    """
    if intents and all(isinstance(i, ExternalSnapshot) for i in intents):
        return _plan_staged_snapshots(ctx, intents)
    others = [i for i in intents if not isinstance(i, LINK_INTENTS)]
    if others:
        raise ValueError("only link and read-only edits (or only snapshots) can be staged, "
                         f"not {others[0]!r}")
    reasons = preflight.check_staged(ctx, list(intents))
    summary = "; ".join(describe(ctx.snapshot, i) for i in intents)
    if reasons:
        return refused(tuple(intents), summary, reasons)
    return plan_links(ctx, list(intents), summary)


# -- snapshots, jobs, add/delete --------------------------------------------------------

def _plan_snapshot(ctx: PlanContext, intent: ExternalSnapshot) -> Plan:
    graph = ctx.snapshot
    node = graph.nodes[intent.node]
    file_node = intent.file_node or f"{intent.overlay}-file"
    size = node.virtual_size or 0
    qcow2: dict[str, Any] = {"driver": "qcow2", "file": file_node, "size": size,
                             "backing-file": node.filename, "backing-fmt": node.driver}
    if intent.cluster_size:
        qcow2["cluster-size"] = intent.cluster_size
    file_job, fmt_job = f"create-{file_node}", f"create-{intent.overlay}"
    steps = (
        QmpCommand("blockdev-create", {"job-id": file_job, "options": {
            "driver": "file", "filename": intent.filename, "size": 0}}),
        WaitJob(file_job, ("concluded",), dismiss=True),
        QmpCommand("blockdev-add", {"driver": "file", "node-name": file_node,
                                    "filename": intent.filename}),
        QmpCommand("blockdev-create", {"job-id": fmt_job, "options": qcow2}),
        WaitJob(fmt_job, ("concluded",), dismiss=True),
        QmpCommand("blockdev-add", {"driver": "qcow2", "node-name": intent.overlay,
                                    "file": file_node, "backing": None}),
        QmpCommand("blockdev-snapshot", {"node": intent.node, "overlay": intent.overlay}),
    )
    parents = graph.parents(intent.node)
    moved = tuple(EdgeFact(e.parent, e.role, intent.overlay) for e in parents
                  if not e.parent.startswith("job:"))
    expected = Expectation(
        edges=(EdgeFact(intent.overlay, "backing", intent.node), *moved),
        present=(intent.overlay, file_node),
        read_only=((intent.node, True),),
    )
    inverse: Plan | None = None
    why: str | None = None
    if parents:
        why = (f"the users of {intent.node} ({', '.join(e.parent for e in parents)}) now use "
               f"{intent.overlay}; QMP cannot move them back")
    else:
        steps_inv: list[QmpCommand] = [
            QmpCommand("blockdev-del", {"node-name": intent.overlay}),
            QmpCommand("blockdev-del", {"node-name": file_node}),
        ]
        if not node.read_only and not node.auto_named:
            # blockdev-snapshot made the node (and its inline children) read-only; plan
            # the way back on that graph so inline children are reopened with it
            ro_graph = simulate(graph, [SetReadOnly(intent.node, True)])
            ro_ctx = PlanContext(ro_graph, ctx.reopen_command, ctx.known_options,
                                 ctx.commands)
            entries = reopen_entries(ro_ctx, [SetReadOnly(intent.node, False)])
            steps_inv += reopen_commands(ro_ctx, entries)
        inverse = Plan(
            intent=Delete(intent.overlay),
            summary=f"Undo: remove overlay {intent.overlay} (the file {intent.filename} stays)",
            steps=tuple(steps_inv),
            expected=Expectation(absent=(intent.overlay, file_node),
                                 read_only=((intent.node, node.read_only),)),
            irreversible="already an undo step",
        )
    return Plan(
        intent=intent,
        summary=describe(graph, intent),
        steps=steps,
        preconditions=(f"{intent.node} is not the backing of another node",
                       f"{intent.overlay} and {file_node} are free node names",
                       f"{intent.filename} can be created"),
        expected=expected,
        inverse=inverse,
        irreversible=why,
        added={file_node: dict(steps[2].arguments or {}), intent.overlay: dict(
            steps[5].arguments or {})},
    )


def _plan_staged_snapshots(ctx: PlanContext, intents: Sequence[Any]) -> Plan:
    summary = "; ".join(describe(ctx.snapshot, i) for i in intents)
    names = [n for i in intents for n in (i.overlay, i.file_node or f"{i.overlay}-file")]
    reasons = next((r for r in (preflight.check(ctx, i) for i in intents) if r), [])
    if not reasons and len(set(names)) != len(names):
        from engine.graph.rules import DuplicateNodeName

        reasons = [DuplicateNodeName(next(n for n in names if names.count(n) > 1))]
    if not reasons and len({i.node for i in intents}) != len(intents):
        reasons = [ValueError("a node can be snapshotted once per transaction")]
    if reasons:
        return refused(tuple(intents), summary, reasons)
    plans = [_plan_snapshot(ctx, i) for i in intents]
    steps: list[Any] = []
    actions: list[dict[str, Any]] = []
    expected = Expectation()
    for plan in plans:
        *prepare, snap = plan.steps
        steps.extend(prepare)
        assert isinstance(snap, QmpCommand)
        actions.append({"type": "blockdev-snapshot", "data": dict(snap.arguments or {})})
        expected = expected.merged(plan.expected)
    steps.append(QmpCommand("transaction", {"actions": actions}))
    inverse: Plan | None = None
    why = next((p.irreversible for p in plans if p.inverse is None), None)
    if why is None:
        inverse = Plan(intent=tuple(p.inverse.intent for p in plans if p.inverse),
                       summary="Undo: " + summary,
                       steps=tuple(s for p in plans if p.inverse for s in p.inverse.steps),
                       expected=_merge_all([p.inverse.expected for p in plans if p.inverse]),
                       irreversible="already an undo step")
    added: dict[str, Any] = {}
    for plan in plans:
        added.update(plan.added)
    return Plan(intent=tuple(intents), summary=summary, steps=tuple(steps),
                preconditions=tuple(c for p in plans for c in p.preconditions),
                expected=expected, inverse=inverse, irreversible=why, added=added)


def _merge_all(expectations: Sequence[Expectation]) -> Expectation:
    out = Expectation()
    for e in expectations:
        out = out.merged(e)
    return out


def _chain_below(graph: GraphSnapshot, key: str) -> list[str]:
    out: list[str] = []
    cur = graph.backing(key)
    while cur is not None and cur not in out:
        out.append(cur)
        cur = graph.backing(cur)
    return out


def _released(graph: GraphSnapshot, dropped: Sequence[str], overlay: str) -> tuple[str, ...]:
    """Which of ``dropped`` (top first) go away once ``overlay``'s backing link moves
    past them: the auto-named ones (nobody holds them by name) left with no parent but
    nodes that go away too. A node added by name stays, and keeps what it links to;
    so does a node another overlay or a drive still uses."""
    gone: set[str] = set()
    for key in dropped:
        if not graph.nodes[key].auto_named:
            continue
        parents = [e for e in graph.parents(key) if not e.parent.startswith("job:")]
        if all((e.parent == overlay and e.role == "backing") or e.parent in gone
               for e in parents):
            gone.add(key)
    return tuple(k for k in dropped if k in gone)


def _plan_stream(ctx: PlanContext, intent: Stream) -> Plan:
    graph = ctx.snapshot
    job_id = intent.job_id or f"stream-{intent.node}"
    args: dict[str, Any] = {"job-id": job_id, "device": intent.node}
    if intent.base is not None:
        args["base-node"] = intent.base
    chain = _chain_below(graph, intent.node)
    dropped = chain[: chain.index(intent.base)] if intent.base in chain else chain
    return Plan(
        intent=intent,
        summary=describe(graph, intent),
        steps=(QmpCommand("block-stream", args), WaitJob(job_id, ("null",))),
        preconditions=(f"{intent.node} is not in a job",),
        expected=Expectation(
            edges=(EdgeFact(intent.node, "backing", intent.base),),
            absent=_released(graph, dropped, intent.node),
        ),
        irreversible=(f"the data of {', '.join(dropped) or 'nothing'} is copied into "
                      f"{intent.node} and its image header is rewritten"),
    )


def _plan_commit(ctx: PlanContext, intent: Commit) -> Plan:
    graph = ctx.snapshot
    device = preflight.root_above(graph, intent.top)
    job_id = intent.job_id or f"commit-{intent.top}"
    args: dict[str, Any] = {"job-id": job_id, "device": device}
    chain = _chain_below(graph, intent.top)
    base = intent.base if intent.base is not None else (chain[-1] if chain else None)
    if device != intent.top:
        args["top-node"] = intent.top
    if intent.base is not None:
        args["base-node"] = intent.base
    dropped = [intent.top, *chain[: chain.index(base)]] if base in chain else [intent.top]
    if device == intent.top:
        steps: tuple[Any, ...] = (
            QmpCommand("block-commit", args), WaitJob(job_id, ("ready",)),
            QmpCommand("job-complete", {"id": job_id}), WaitJob(job_id, ("null",)))
        moved = tuple(EdgeFact(e.parent, e.role, base) for e in graph.parents(intent.top)
                      if not e.parent.startswith("job:"))
        expected = Expectation(edges=moved, present=(base,) if base else ())
        kind = "active commit"
    else:
        overlay = next(e.parent for e in graph.parents(intent.top) if e.role == "backing")
        steps = (QmpCommand("block-commit", args), WaitJob(job_id, ("null",)))
        expected = Expectation(
            edges=(EdgeFact(overlay, "backing", base),),
            absent=_released(graph, dropped, overlay))
        kind = "commit"
    return Plan(
        intent=intent,
        summary=describe(graph, intent) + f" ({kind})",
        warnings=_commit_warnings(graph, intent.top, base, dropped),
        steps=steps,
        preconditions=(f"{base} is below {intent.top}", f"{device} is not in a job"),
        expected=expected,
        irreversible=f"the data of {', '.join(dropped)} is written into {base}",
    )


def _commit_warnings(graph: GraphSnapshot, top: str, base: str | None,
                     dropped: Sequence[str]) -> tuple[str, ...]:
    """Data a commit changes for others: overlays outside the chain that share a node
    whose content changes (base) or that reads through a committed layer."""
    out: list[str] = []
    chain = {top, *dropped}
    for key in [base, *dropped[1:]] if base else dropped[1:]:
        if key is None:
            continue
        others = [e.parent for e in graph.parents(key)
                  if e.role == "backing" and e.parent not in chain]
        if others and key == base:
            out.append(f"{base} is also the backing of {', '.join(others)}: what they read "
                       f"changes when {top}'s data is written into it")
        elif others:
            out.append(f"{key} is also the backing of {', '.join(others)}")
    return tuple(out)


def _exclusive_owned(ctx: PlanContext, key: str) -> list[str]:
    """Nodes below ``key`` that the monitor owns and that only ``key``'s subtree uses."""
    graph = ctx.snapshot
    doomed = {key}
    order: list[str] = []
    frontier = [e.child for e in graph.children(key)]
    while frontier:
        child = frontier.pop(0)
        if child in doomed:
            continue
        if any(e.parent not in doomed for e in graph.parents(child)):
            continue
        doomed.add(child)
        node = graph.nodes[child]
        owned = node.name in ctx.known_options and not _inline_in_known(ctx, child)
        if owned:
            order.append(child)
        frontier.extend(e.child for e in graph.children(child))
    return order


def _inline_in_known(ctx: PlanContext, key: str) -> bool:
    """True if a remembered parent created ``key`` inline (it dies with the parent)."""
    for opts in ctx.known_options.values():
        for role in ("file", "backing"):
            value = opts.get(role)
            if isinstance(value, Mapping) and value.get("node-name") == key:
                return True
    return False


def _plan_delete(ctx: PlanContext, intent: Delete) -> Plan:
    graph = ctx.snapshot
    extra = _exclusive_owned(ctx, intent.node)
    steps = tuple(QmpCommand("blockdev-del", {"node-name": k}) for k in [intent.node, *extra])
    gone = [intent.node, *extra]
    inverse, why = _undelete(ctx, gone)
    summary = describe(graph, intent) + (f" and {', '.join(extra)}" if extra else "")
    return Plan(
        intent=intent,
        summary=summary,
        steps=steps,
        preconditions=(f"{intent.node} has no users",),
        expected=Expectation(absent=tuple(gone)),
        inverse=inverse,
        irreversible=why,
    )


def _undelete(ctx: PlanContext, gone: Sequence[str]) -> tuple[Plan | None, str | None]:
    """blockdev-add commands that re-create deleted nodes (children first), if possible."""
    graph = ctx.snapshot
    steps: list[QmpCommand] = []
    for key in reversed(gone):
        node = graph.nodes[key]
        opts = current_options(graph, key, ctx.known_options)
        for role in ("file",):
            child = graph.child(key, role)
            if child is None:
                continue
            # a child created inline (auto-named, or named inside the parent's
            # blockdev-add) was deleted with it: re-create it inline too
            if graph.nodes[child].auto_named or _inline_in_known(ctx, child):
                inline = inline_options(graph, child)
                if inline is None:
                    return None, f"{key}'s {role} child {child} cannot be re-created"
                opts[role] = inline
        backing = graph.backing(key)
        if backing is not None and graph.nodes[backing].auto_named:
            opts.pop("backing", None)     # re-opened from the image header again
        if node.auto_named:
            return None, f"{key} has no name of its own to re-create it under"
        steps.append(QmpCommand("blockdev-add", opts))
    inverse = Plan(
        intent=AddImage(gone[0], graph.nodes[gone[0]].filename),
        summary=f"Undo: re-open {', '.join(gone)}",
        steps=tuple(steps),
        expected=Expectation(present=tuple(gone)),
        irreversible="already an undo step",
    )
    return inverse, None


def _plan_add(ctx: PlanContext, intent: AddImage) -> Plan:
    opts: dict[str, Any] = {"driver": intent.format, "node-name": intent.node_name}
    opts.update(copy.deepcopy(dict(intent.options)))
    opts["file"] = {"driver": "file", "filename": intent.filename}
    if intent.read_only:
        opts["read-only"] = True
    if not intent.with_chain and intent.format in ("qcow2", "qcow", "qed", "vmdk"):
        opts["backing"] = None
    inverse = Plan(
        intent=Delete(intent.node_name),
        summary=f"Undo: close {intent.node_name}",
        steps=(QmpCommand("blockdev-del", {"node-name": intent.node_name}),),
        expected=Expectation(absent=(intent.node_name,)),
        irreversible="already an undo step",
    )
    return Plan(
        intent=intent,
        summary=describe(ctx.snapshot, intent),
        steps=(QmpCommand("blockdev-add", opts),),
        preconditions=(f"{intent.node_name} is a free node name",),
        expected=Expectation(present=(intent.node_name,)),
        inverse=inverse,
        added={intent.node_name: opts},
    )


def _plan_medium(ctx: PlanContext, intent: ChangeMedium) -> Plan:
    graph = ctx.snapshot
    backend = graph.nodes.get(f"backend:{intent.device}")
    old_root = graph.child(backend.key, "root") if backend else None
    old_file = graph.nodes[old_root].filename if old_root else None
    if intent.filename is None:
        cmd = QmpCommand("eject", {"id": intent.device, "force": intent.force})
    else:
        args: dict[str, Any] = {"id": intent.device, "filename": intent.filename,
                                "format": intent.format}
        if intent.read_only_mode:
            args["read-only-mode"] = intent.read_only_mode
        cmd = QmpCommand("blockdev-change-medium", args)
    inverse: Plan | None = None
    why: str | None = None
    if old_file and not old_file.startswith("json:") and old_root:
        back = ChangeMedium(intent.device, old_file, graph.nodes[old_root].driver)
        inverse = Plan(intent=back, summary=f"Undo: re-insert {old_file}",
                       steps=(QmpCommand("blockdev-change-medium", {
                           "id": intent.device, "filename": old_file,
                           "format": graph.nodes[old_root].driver}),),
                       irreversible="already an undo step")
    elif old_root is None:
        inverse = Plan(intent=ChangeMedium(intent.device, None), summary="Undo: eject",
                       steps=(QmpCommand("eject", {"id": intent.device}),),
                       irreversible="already an undo step")
    else:
        why = f"the previous medium of {intent.device} has no plain file name"
    return Plan(intent=intent, summary=describe(graph, intent), steps=(cmd,),
                preconditions=(f"device {intent.device} has a removable medium",),
                inverse=inverse, irreversible=why)


_BUILDERS: dict[type, Any] = {
    SetBacking: _plan_set_backing,
    DetachBacking: _plan_detach,
    SetReadOnly: _plan_read_only,
    ExternalSnapshot: _plan_snapshot,
    Stream: _plan_stream,
    Commit: _plan_commit,
    Delete: _plan_delete,
    AddImage: _plan_add,
    ChangeMedium: _plan_medium,
}

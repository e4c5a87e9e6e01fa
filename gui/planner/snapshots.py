"""External snapshots: a new qcow2 overlay created, added and made the active layer.

The overlay's file and image are created by ``blockdev-create`` jobs, added by name and
put on top with ``blockdev-snapshot``; several snapshots staged together become one
``transaction``, so every overlay takes over at once or none does.

The overlay's header names its backing file by the image's plain file name, as
``blockdev-snapshot-sync`` does for a node with a plain name, and as libvirt and
``qemu-img`` users expect — also when the node's name is a ``json:`` one only because
its backing link was overridden (:func:`backing_file_name`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from engine.graph import rules
from engine.graph.rules import DuplicateNodeName
from engine.graph.snapshot import GraphSnapshot, is_anonymous_backend
from gui.planner.context import PlanContext
from gui.planner.intents import Delete, ExternalSnapshot, SetReadOnly
from gui.planner.links import reopen_commands, reopen_entries
from gui.planner.names import job_id_for
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand, WaitJob, refused
from gui.planner.preflight import check as preflight_check
from gui.planner.simulate import simulate
from gui.planner.summary import describe


def backing_file_name(graph: GraphSnapshot, key: str) -> tuple[str, str]:
    """(file name, format) an overlay of ``key`` should name in its header.

    Below any filters (a throttle node), the image's own name when it is plain; when
    it is ``json:`` only because its backing link is overridden (``backing: null`` or
    another node), the plain name of its file; otherwise (a raw window with an
    offset, a ``null-co`` node) the ``json:`` name itself, which QEMU can reopen.
    """
    data = rules.skip_filters(graph, key) or key
    node = graph.nodes[data]
    if not node.filename.startswith("json:"):
        return node.filename, node.driver
    try:
        options = json.loads(node.filename[len("json:"):])
    except ValueError:
        options = None
    if isinstance(options, dict) and set(options) <= {"driver", "file", "backing"}:
        file = options.get("file")
        if isinstance(file, dict) and set(file) == {"driver", "filename"} \
                and file["driver"] == "file" and isinstance(file["filename"], str):
            return file["filename"], node.driver
    return node.filename, node.driver


def plan_snapshot(ctx: PlanContext, intent: ExternalSnapshot) -> Plan:
    # Over 60 lines: the plan's steps, its promise and its inverse are read together when checking
    # that the undo undoes exactly the steps.
    graph = ctx.snapshot
    node = graph.nodes.get(intent.node)
    file_node = intent.file_node or f"{intent.overlay}-file"
    size = (node.virtual_size or 0) if node is not None else 0
    backing, backing_fmt = (backing_file_name(graph, intent.node) if node is not None
                            else ("", "qcow2"))
    qcow2: dict[str, Any] = {"driver": "qcow2", "file": file_node, "size": size,
                             "backing-file": backing, "backing-fmt": backing_fmt}
    if intent.cluster_size:
        qcow2["cluster-size"] = intent.cluster_size
    file_job = job_id_for(graph, "create", file_node)
    fmt_job = job_id_for(graph, "create", intent.overlay)
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
                  if not e.parent.startswith("job:") and not is_anonymous_backend(e.parent))
    expected = Expectation(
        edges=(EdgeFact(intent.overlay, "backing", intent.node), *moved),
        present=(intent.overlay, file_node),
        read_only=((intent.node, True),),
    )
    inverse: Plan | None = None
    why: str | None = None
    if node is None:
        why = f"{intent.node} is not in the graph"
    elif parents:
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
                                 ctx.commands, ctx.devices)
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


def plan_staged_snapshots(ctx: PlanContext, intents: Sequence[Any]) -> Plan:
    summary = "; ".join(describe(ctx.snapshot, i) for i in intents)
    names = [n for i in intents for n in (i.overlay, i.file_node or f"{i.overlay}-file")]
    reasons = next((r for r in (preflight_check(ctx, i) for i in intents) if r), [])
    if not reasons and len(set(names)) != len(names):
        reasons = [DuplicateNodeName(next(n for n in names if names.count(n) > 1))]
    if not reasons and len({i.node for i in intents}) != len(intents):
        reasons = [ValueError("a node can be snapshotted once per transaction")]
    if reasons:
        return refused(tuple(intents), summary, reasons)
    plans = [plan_snapshot(ctx, i) for i in intents]
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

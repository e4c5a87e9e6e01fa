"""Nodes added and deleted (``blockdev-add``, ``blockdev-del``) and removable media changed.

Deleting a node also deletes the nodes the monitor added that only it used; the inverse
re-adds them, children first, where each can be re-created under its own name.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from gui.planner.context import PlanContext
from gui.planner.intents import (
    AddImage,
    ChangeMedium,
    CloseTray,
    Delete,
    InsertMedium,
    OpenTray,
    RemoveMedium,
)
from gui.planner.options import current_options, inline_options
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand
from gui.planner.summary import describe


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


def plan_delete(ctx: PlanContext, intent: Delete) -> Plan:
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


def plan_add(ctx: PlanContext, intent: AddImage) -> Plan:
    opts: dict[str, Any] = {"driver": intent.format, "node-name": intent.node_name}
    opts.update(copy.deepcopy(dict(intent.options)))
    opts["file"] = {"driver": "file", "filename": intent.filename}
    if intent.file_node is not None:
        opts["file"]["node-name"] = intent.file_node
    if intent.read_only:
        opts["read-only"] = True
    if intent.backing is not None:
        opts["backing"] = intent.backing
    elif not intent.with_chain and intent.format in ("qcow2", "qcow", "qed", "vmdk"):
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
        expected=Expectation(
            present=(intent.node_name,),
            edges=((EdgeFact(intent.node_name, "backing", intent.backing),)
                   if intent.backing is not None else ())),
        inverse=inverse,
        added={intent.node_name: opts},
    )


def plan_medium(ctx: PlanContext, intent: ChangeMedium) -> Plan:
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


def plan_tray(ctx: PlanContext, intent: OpenTray | CloseTray | RemoveMedium | InsertMedium
              ) -> Plan:
    """A tray opened or closed, a medium taken out or a node put in: one command each,
    undone by its opposite (a medium taken out goes back in by its node's name)."""
    graph = ctx.snapshot
    backend = f"backend:{intent.device}"
    medium = graph.child(backend, "root") if backend in graph.nodes else None
    inverse_intent: Any = None
    expected = Expectation()
    cmd = _tray_command(intent)
    match intent:
        case OpenTray(device):
            inverse_intent = CloseTray(device)
        case CloseTray(device):
            inverse_intent = OpenTray(device)
        case RemoveMedium(device):
            if medium is not None and not graph.nodes[medium].auto_named:
                inverse_intent = InsertMedium(device, medium)
            if backend in graph.nodes:
                expected = Expectation(edges=(EdgeFact(backend, "root", None),))
        case InsertMedium(device, node):
            inverse_intent = RemoveMedium(device)
            if backend in graph.nodes:
                expected = Expectation(edges=(EdgeFact(backend, "root", node),))
    inverse = None
    why = f"{medium} has no name of its own to insert it again" \
        if isinstance(intent, RemoveMedium) and inverse_intent is None and medium else None
    if inverse_intent is not None:
        inverse = Plan(intent=inverse_intent, summary="Undo: " + describe(graph, intent),
                       steps=(_tray_command(inverse_intent),),
                       irreversible="already an undo step")
    return Plan(intent=intent, summary=describe(graph, intent), steps=(cmd,),
                preconditions=(f"device {intent.device} has a removable medium",),
                expected=expected, inverse=inverse, irreversible=why)


def _tray_command(intent: OpenTray | CloseTray | RemoveMedium | InsertMedium) -> QmpCommand:
    match intent:
        case OpenTray(device, force):
            return QmpCommand("blockdev-open-tray", {"id": device, "force": force})
        case CloseTray(device):
            return QmpCommand("blockdev-close-tray", {"id": device})
        case RemoveMedium(device):
            return QmpCommand("blockdev-remove-medium", {"id": device})
        case InsertMedium(device, node):
            return QmpCommand("blockdev-insert-medium", {"id": device, "node-name": node})
    raise TypeError(intent)

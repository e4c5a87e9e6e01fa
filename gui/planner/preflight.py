"""Preflight: the engine's rules (:mod:`engine.graph.rules`) asked about an intent.

The same functions guard the bundled engine's own commands, so a refusal here carries
QEMU's exact text. Runs on every mouse move during a drag, so it stays cheap (< 1 ms on
1,000 nodes): only the nodes an intent touches and a reachability test.

Each function returns the list of reasons (empty = allowed); the first rule that fails
is the one QEMU would report, so lists hold at most one reason per intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.graph import rules
from engine.graph.names import check_job_id
from engine.graph.snapshot import GraphSnapshot
from gui.planner.context import PlanContext
from gui.planner.intents import (
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
from gui.planner.simulate import simulate


class MissingCommand(rules.RuleViolation):
    """The peer does not have a command the plan needs (found by ``query-commands``)."""

    error_class = "CommandNotFound"

    def __init__(self, command: str) -> None:
        super().__init__(f"The command {command} has not been found")


class JobIdInUse(rules.RuleViolation):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job ID '{job_id}' already in use")


def check(ctx: PlanContext, intent: Any) -> list[Exception]:
    """Typed reasons QEMU would refuse ``intent`` for on ``ctx.snapshot`` ([] = allowed)."""
    try:
        _check(ctx, intent)
    except rules.RuleViolation as exc:
        return [exc]
    return []


def check_staged(ctx: PlanContext, intents: Sequence[Any]) -> list[Exception]:
    """Reasons to refuse staged link edits, each checked on the graph the ones before it
    leave (they are sent as one atomic reopen)."""
    if all(isinstance(i, ExternalSnapshot) for i in intents):
        return next((r for r in (check(ctx, i) for i in intents) if r), [])
    if any(isinstance(i, Delete) for i in intents):      # an undo of staged snapshots
        return next((r for r in (check(ctx, i) for i in intents) if r), [])
    graph = ctx.snapshot
    for intent in intents:
        step = PlanContext(graph, ctx.reopen_command, ctx.known_options, ctx.commands)
        reasons = check(step, intent)
        if reasons:
            return reasons
        graph = simulate(graph, [intent])
    return []


def _need(ctx: PlanContext, command: str) -> None:
    if ctx.commands and command not in ctx.commands:
        raise MissingCommand(command)


def _check(ctx: PlanContext, intent: Any) -> None:
    view = ctx.snapshot
    match intent:
        case SetBacking(node, backing):
            _need(ctx, ctx.reopen_command)
            rules.check_reopen_by_name(view, node)
            rules.check_set_backing(view, node, backing)
        case DetachBacking(node):
            _need(ctx, ctx.reopen_command)
            rules.check_reopen_by_name(view, node)
            rules.check_set_backing(view, node, None)
        case SetReadOnly(node, read_only):
            _need(ctx, ctx.reopen_command)
            rules.check_reopen_by_name(view, node)
            rules.check_reopen_driver(view, node)
            rules.check_read_only(view, node, read_only)
        case ExternalSnapshot(node, overlay, _filename, file_node):
            _need(ctx, "blockdev-create")
            _need(ctx, "blockdev-snapshot")
            rules.check_snapshot_node(view, node)
            rules.check_new_node_name(view, overlay)
            file_name = file_node or f"{overlay}-file"
            rules.check_new_node_name(view, file_name)
            if file_name == overlay:
                raise rules.DuplicateNodeName(overlay)
        case Stream(node, base, job_id):
            _need(ctx, "block-stream")
            _check_job_id(view, job_id or f"stream-{node}")
            rules.check_stream(view, node, base)
        case Commit(top, base, job_id):
            _need(ctx, "block-commit")
            _check_job_id(view, job_id or f"commit-{top}")
            if view.node_info(top) is None:
                raise rules.ReferenceNotFound(top)
            rules.check_commit(view, root_above(view, top), top, base)
        case Delete(node):
            _need(ctx, "blockdev-del")
            info = view.node_info(node)
            owned = None if info is None or not info.auto_named else False
            rules.check_delete(view, node, monitor_owned=owned, job_blockers=_jobs_on(view, node))
        case AddImage():
            _need(ctx, "blockdev-add")
            _check_add(view, intent)
        case ChangeMedium(device, filename):
            _need(ctx, "blockdev-change-medium" if filename is not None else "eject")
            if view.node_info(f"backend:{device}") is None:
                raise rules.DeviceNotFound(device)
        case _:
            raise TypeError(f"not an intent: {intent!r}")


def _check_add(view: GraphSnapshot, intent: AddImage) -> None:
    """``blockdev-add``'s refusals for an image opened by name (and its file node, and
    the node backing it by reference), in QEMU's order."""
    rules.check_new_node_name(view, intent.node_name)
    if intent.file_node is not None:
        rules.check_new_node_name(view, intent.file_node)
        if intent.file_node == intent.node_name:
            raise rules.DuplicateNodeName(intent.file_node)
    if intent.backing is not None and view.node_info(intent.backing) is None:
        missing = rules.ReferenceNotFound(intent.backing, intent.backing)
        raise rules.RuleViolation(f"Could not open backing file: {missing}")


def _check_job_id(view: GraphSnapshot, job_id: str) -> None:
    text = check_job_id(job_id)
    if text is not None:
        raise rules.RuleViolation(text)
    if view.node_info(f"job:{job_id}") is not None:
        raise JobIdInUse(job_id)


def _jobs_on(view: GraphSnapshot, node: str) -> tuple[str, ...]:
    """Types of the block jobs whose main/active node is ``node`` (operation blockers)."""
    out: list[str] = []
    for e in view.parents(node):
        if e.parent.startswith("job:") and e.role in ("main node", "active node"):
            info = view.node_info(e.parent)
            out.append(info.driver if info is not None else "")
    return tuple(out)


def root_above(view: GraphSnapshot, key: str) -> str:
    """The top of the chain containing ``key``: follow backing/file parents upwards."""
    cur, seen = key, {key}
    while True:
        ups = [e.parent for e in view.parents(cur)
               if e.role in ("backing", "file") and not e.parent.startswith(("job:", "backend:"))]
        if not ups or ups[0] in seen:
            return cur
        cur = ups[0]
        seen.add(cur)

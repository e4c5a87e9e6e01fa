"""Preflight: the engine's rules (:mod:`engine.graph.rules`) asked about an intent.

The same functions guard the bundled engine's own commands, so a refusal here carries
QEMU's exact text. Runs on every mouse move during a drag, so it stays cheap (< 1 ms on
1,000 nodes): only the nodes an intent touches and a reachability test.

Each function returns the list of reasons (empty = allowed); the first rule that fails
is the one QEMU would report, so lists hold at most one reason per intent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from gui.planner.context import PlanContext
from gui.planner.intents import (
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
from gui.planner.jobs import root_above
from gui.planner.links import reopen_route
from gui.planner.names import job_id_for
from gui.planner.simulate import simulate


class MissingCommand(rules.RuleViolation):
    """The peer does not have a command the plan needs (found by ``query-commands``)."""

    error_class = "CommandNotFound"

    def __init__(self, command: str) -> None:
        super().__init__(f"The command {command} has not been found")


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
        step = PlanContext(graph, ctx.reopen_command, ctx.known_options, ctx.commands,
                           ctx.devices)
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
            _check_reopen(ctx, node, backing=backing)
        case DetachBacking(node):
            _need(ctx, ctx.reopen_command)
            _check_reopen(ctx, node, backing=None)
        case SetReadOnly(node, read_only):
            _need(ctx, ctx.reopen_command)
            _check_reopen(ctx, node, read_only=read_only)
        case ExternalSnapshot(node, overlay, _filename, file_node):
            _need(ctx, "blockdev-create")
            _need(ctx, "blockdev-snapshot")
            file_name = file_node or f"{overlay}-file"
            rules.check_job_id(view, job_id_for(view, "create", file_name))
            rules.check_new_node_name(view, file_name)
            rules.check_job_id(view, job_id_for(view, "create", overlay))
            rules.check_new_node_name(view, overlay)
            if file_name == overlay:
                raise rules.DuplicateNodeName(overlay)
            rules.check_snapshot(view, node, overlay)
        case Stream(node, base, job_id):
            _need(ctx, "block-stream")
            rules.check_stream(view, node, base, job_id or job_id_for(view, "stream", node),
                               inline=inline_nodes(ctx))
        case Commit(top, base, job_id):
            _need(ctx, "block-commit")
            device = root_above(view, top) if top in view.nodes else top
            rules.check_commit(view, device, top, base,
                               job_id or job_id_for(view, "commit", top),
                               inline=inline_nodes(ctx))
        case Delete(node):
            _need(ctx, "blockdev-del")
            rules.check_delete(view, node, monitor_owned=monitor_owned(ctx, node))
        case AddImage():
            _need(ctx, "blockdev-add")
            _check_add(view, intent)
        case ChangeMedium(device, filename):
            _need(ctx, "blockdev-change-medium" if filename is not None else "eject")
            rules.check_medium(view, _devices(ctx), device,
                               "change" if filename is not None else "eject",
                               filename=filename, fmt=intent.format, force=intent.force,
                               read_only=_mode(intent.read_only_mode))
        case OpenTray(device, force):
            _need(ctx, "blockdev-open-tray")
            rules.check_tray(view, _devices(ctx), device, "open", force=force)
        case CloseTray(device):
            _need(ctx, "blockdev-close-tray")
            rules.check_tray(view, _devices(ctx), device, "close")
        case RemoveMedium(device):
            _need(ctx, "blockdev-remove-medium")
            rules.check_tray(view, _devices(ctx), device, "remove")
        case InsertMedium(device, node):
            _need(ctx, "blockdev-insert-medium")
            rules.check_tray(view, _devices(ctx), device, "insert", node=node)
        case _:
            raise TypeError(f"not an intent: {intent!r}")


def _devices(ctx: PlanContext) -> dict[str, rules.Device] | None:
    return dict(ctx.devices) if ctx.devices is not None else None


def _check_reopen(ctx: PlanContext, node: str, *, backing: object = rules.KEEP,
                  read_only: bool | None = None) -> None:
    """The reopen the planner sends for a link or flag edit of ``node``: by its name,
    or through its named ancestor (:func:`gui.planner.links.reopen_route`)."""
    view = ctx.snapshot
    if node not in view.nodes:
        rules.find_node(view, node)
    route = reopen_route(view, node)
    path = "options[0]" + "".join(f".{role}" for role in route.roles)
    rules.check_reopen_edit(view, node, backing=backing, read_only=read_only,
                            by_name=route.by_name, path=path, entry=route.entry,
                            inline=inline_nodes(ctx))


def inline_nodes(ctx: PlanContext) -> frozenset[str]:
    """Named nodes this client created inside another node's options (``file`` given
    as a dict with a ``node-name``): they live and change with their parent, which
    QEMU's queries do not show."""
    out: set[str] = set()
    work: list[Mapping[str, Any]] = list(ctx.known_options.values())
    while work:
        opts = work.pop()
        for value in opts.values():
            if isinstance(value, Mapping):
                name = value.get("node-name")
                if isinstance(name, str):
                    out.add(name)
                work.append(value)
    return frozenset(out)


def _mode(read_only_mode: str | None) -> bool | None:
    return {"read-only": True, "read-write": False}.get(read_only_mode or "retain")


def monitor_owned(ctx: PlanContext, node: str) -> bool | None:
    """Whether ``blockdev-del`` may delete ``node``: auto-named nodes never; a node this
    client created inside another's options neither; otherwise not known from queries
    (None: QEMU's later checks decide)."""
    info = ctx.snapshot.node_info(node)
    if info is None:
        return None
    if info.auto_named or node in inline_nodes(ctx):
        return False
    return None


def _check_add(view: GraphSnapshot, intent: AddImage) -> None:
    rules.check_add(view, intent.node_name, intent.file_node, intent.backing)

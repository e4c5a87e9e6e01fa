"""Stream and commit: block jobs the plan starts, waits for and (active commit) completes.

Neither can be undone — the data moves — so their plans say so, name the layers whose
data moves, the auto-named nodes that go away with them, and warn when a commit changes
what other overlays of a shared base read. Job ids are made from the node's name
(:func:`gui.planner.names.job_id_for`), so auto-named nodes get valid ones too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot, anonymous_backend_key
from gui.planner.context import PlanContext
from gui.planner.intents import Commit, Stream
from gui.planner.names import job_id_for
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand, WaitJob
from gui.planner.summary import describe


def chain_below(graph: GraphSnapshot, key: str) -> list[str]:
    """The nodes below ``key`` down its chain (filters and backing links, as QEMU walks)."""
    out: list[str] = []
    cur = rules.filter_or_cow(graph, key)
    while cur is not None and cur not in out and cur != key:
        out.append(cur)
        cur = rules.filter_or_cow(graph, cur)
    return out


def root_above(graph: GraphSnapshot, key: str) -> str:
    """The root of the tree holding ``key``: up through the nodes whose backing or file
    child it is, to one that only block backends (or nothing) use. (For a protocol
    node that is the image's overlay chain's top, so QEMU says it is not in the chain.)"""
    cur, seen = key, {key}
    while True:
        ups = [e.parent for e in graph.parents(cur)
               if e.parent in graph.nodes and graph.nodes[e.parent].kind == "block-node"
               and e.role in ("backing", "file")]
        if not ups or ups[0] in seen:
            return cur
        cur = ups[0]
        seen.add(cur)


def _released(graph: GraphSnapshot, dropped: Sequence[str], overlay: str) -> tuple[str, ...]:
    """Which of ``dropped`` (top first) go away once ``overlay``'s backing link moves
    past them: the auto-named ones (nobody holds them by name) left with no parent but
    nodes that go away too. A node added by name stays, and keeps what it links to;
    so does a node another overlay or a drive still uses."""
    gone: set[str] = set()
    for key in dropped:
        if key not in graph.nodes or not graph.nodes[key].auto_named:
            continue
        parents = [e for e in graph.parents(key) if not e.parent.startswith("job:")]
        if all((e.parent == overlay and e.role == "backing") or e.parent in gone
               for e in parents):
            gone.add(key)
            gone.update(c.child for c in graph.children(key)
                        if c.role == "file" and c.child in graph.nodes
                        and graph.nodes[c.child].auto_named and len(graph.parents(c.child)) == 1)
    return tuple(k for k in [*dropped, *sorted(gone - set(dropped))] if k in gone)


def plan_stream(ctx: PlanContext, intent: Stream) -> Plan:
    graph = ctx.snapshot
    job_id = intent.job_id or job_id_for(graph, "stream", intent.node)
    args: dict[str, Any] = {"job-id": job_id, "device": intent.node}
    if intent.base is not None:
        args["base-node"] = intent.base
    if intent.speed:
        args["speed"] = intent.speed
    chain = chain_below(graph, intent.node) if intent.node in graph.nodes else []
    dropped = chain[: chain.index(intent.base)] if intent.base in chain else chain
    dropped = [k for k in dropped if graph.nodes[k].driver not in rules.FILTER_DRIVERS]
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


def plan_commit(ctx: PlanContext, intent: Commit) -> Plan:
    graph = ctx.snapshot
    known = intent.top in graph.nodes
    device = root_above(graph, intent.top) if known else intent.top
    job_id = intent.job_id or job_id_for(graph, "commit", intent.top)
    args: dict[str, Any] = {"job-id": job_id, "device": device}
    if device != intent.top:
        args["top-node"] = intent.top
    if intent.base is not None:
        args["base-node"] = intent.base
    if intent.speed:
        args["speed"] = intent.speed
    chain = chain_below(graph, intent.top) if known else []
    base = intent.base if intent.base is not None else (
        rules.find_overlay(graph, intent.top, None) if known else None)
    dropped = [intent.top, *chain[: chain.index(base)]] if base in chain else [intent.top]
    dropped = [k for k in dropped
               if k not in graph.nodes or graph.nodes[k].driver not in rules.FILTER_DRIVERS]
    active = known and rules.commit_is_active(graph, device, intent.top)
    if active:
        steps: tuple[Any, ...] = (
            QmpCommand("block-commit", args), WaitJob(job_id, ("ready",)),
            QmpCommand("job-complete", {"id": job_id}), WaitJob(job_id, ("null",)))
        moved = tuple(EdgeFact(_rekeyed(e.parent, intent.top, base), e.role, base)
                      for e in graph.parents(intent.top)
                      if not e.parent.startswith("job:") and e.parent not in dropped)
        expected = Expectation(edges=moved, present=(base,) if base else ())
        kind = "active commit"
    else:
        overlay = rules.find_overlay(graph, device, intent.top) if known else None
        steps = (QmpCommand("block-commit", args), WaitJob(job_id, ("null",)))
        expected = Expectation(
            edges=(EdgeFact(overlay, "backing", base),) if overlay else (),
            absent=_released(graph, dropped, overlay) if overlay else ())
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


def _rekeyed(parent: str, old_root: str, new_root: str | None) -> str:
    """``parent``'s key once its root is ``new_root``: an anonymous backend (an export's)
    is known by its root node's key, which changes with the root (named ones keep theirs)."""
    if new_root is not None and parent == anonymous_backend_key(old_root):
        return anonymous_backend_key(new_root)
    return parent


def _commit_warnings(graph: GraphSnapshot, top: str, base: str | None,
                     dropped: Sequence[str]) -> tuple[str, ...]:
    """Data a commit changes for others: overlays outside the chain that share a node
    whose content changes (base) or that reads through a committed layer."""
    out: list[str] = []
    chain = {top, *dropped}
    for key in [base, *dropped[1:]] if base else dropped[1:]:
        if key is None or key not in graph.nodes:
            continue
        others = [e.parent for e in graph.parents(key)
                  if e.role == "backing" and e.parent not in chain]
        if others and key == base:
            out.append(f"{base} is also the backing of {', '.join(others)}: what they read "
                       f"changes when {top}'s data is written into it")
        elif others:
            out.append(f"{key} is also the backing of {', '.join(others)}")
    return tuple(out)

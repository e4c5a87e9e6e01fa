"""Stream and commit: block jobs the plan starts, waits for and (active commit) completes.

Neither can be undone — the data moves — so their plans say so, name the layers whose
data moves, the auto-named nodes that go away with them, and warn when a commit changes
what other overlays of a shared base read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.planner.context import PlanContext
from gui.planner.intents import Commit, Stream
from gui.planner.plan import EdgeFact, Expectation, Plan, QmpCommand, WaitJob
from gui.planner.preflight import root_above
from gui.planner.summary import describe


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


def plan_stream(ctx: PlanContext, intent: Stream) -> Plan:
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


def plan_commit(ctx: PlanContext, intent: Commit) -> Plan:
    graph = ctx.snapshot
    device = root_above(graph, intent.top)
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

"""Random block graphs on the bundled engine, random intents, and the planner's promise.

A case is data: a :class:`GraphRecipe` (which images are opened how: as whole chains
with auto-named backing nodes, layer by layer with names, read-only or not, some
as a VM drive's medium) and a list of intents over the names the recipe creates
(plus a few names that do not exist). :func:`check_case` builds the graph on a
real :class:`~engine.qmp.Engine`, then for each intent plans on the snapshot the
engine reports over QMP and, when preflight accepts, executes the plan's steps.

The properties, for every executed step:

- a plan that passed preflight is never refused by the engine for a reason the
  rules module knows (a :class:`~engine.graph.rules.RuleViolation` behind the
  error) — preflight and the engine share those rules, so that would be a bug;
- a command that fails leaves the graph exactly as it was (empty snapshot diff);
- a plan whose steps all succeeded leaves the graph as its expectation says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.formats import create_qcow2, create_raw
from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from engine.qmp import Engine, QMPError
from gui.planner.intents import (
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.plan import QmpCommand, WaitJob
from gui.planner.planner import PlanContext, plan_intent

MiB = 1 << 20

#: image files every case has: three chains and two lone images
FILES = {
    "a0.qcow2": None, "a1.qcow2": "a0.qcow2", "a2.qcow2": "a1.qcow2",
    "b0.qcow2": None, "b1.qcow2": "b0.qcow2",
    "c0.raw": None, "c1.qcow2": "c0.raw",
    "d.qcow2": None, "e.raw": None,
}
CHAINS = (("a2.qcow2", "a1.qcow2", "a0.qcow2"), ("b1.qcow2", "b0.qcow2"),
          ("c1.qcow2", "c0.raw"), ("d.qcow2",), ("e.raw",))


@dataclass(frozen=True)
class StackRecipe:
    """How one chain is opened: ``named`` layers each get a node name (prefix+index)
    and are linked by name; otherwise only the top is named and QEMU opens the rest."""

    chain: int
    named: bool
    read_only: bool
    drive: bool


@dataclass(frozen=True)
class GraphRecipe:
    """Stacks of distinct chains (a file opened twice for writing is refused by QEMU too)."""

    stacks: tuple[StackRecipe, ...]

    def __post_init__(self) -> None:
        unique: dict[int, StackRecipe] = {}
        for s in self.stacks:
            unique.setdefault(s.chain, s)
        object.__setattr__(self, "stacks", tuple(unique.values()))


@dataclass
class Outcome:
    """What happened to one intent (for statistics and messages)."""

    intent: Any
    refused: bool = False
    failed: str | None = None
    steps: int = 0
    notes: list[str] = field(default_factory=list)


class PromiseBroken(AssertionError):
    """The planner or the engine broke one of the properties above."""


def make_files(workdir: Path) -> None:
    for name, backing in FILES.items():
        path = workdir / name
        if name.endswith(".raw"):
            create_raw(path, MiB)
        else:
            fmt = None if backing is None else ("raw" if backing.endswith(".raw") else "qcow2")
            create_qcow2(path, MiB, backing_file=backing, backing_format=fmt,
                         cluster_size=65536)


def node_names(recipe: GraphRecipe) -> list[str]:
    """Every name the recipe gives a node (the intents draw from these)."""
    out = []
    for i, s in enumerate(recipe.stacks):
        chain = CHAINS[s.chain]
        out += [f"n{i}l{j}" for j in range(len(chain) if s.named else 1)]
        out += [f"n{i}l{j}-file" for j in range(len(chain) if s.named else 1)]
    return out


def build(engine: Engine, recipe: GraphRecipe, workdir: Path) -> dict[str, dict[str, Any]]:
    """Open the recipe's nodes; returns the options sent for each (what an editor's
    session remembers: which named file nodes were created inside their parent)."""
    sent: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(recipe.stacks):
        chain = CHAINS[s.chain]
        layers = chain if s.named else chain[:1]
        below: str | None = None
        for j in reversed(range(len(layers))):
            name = f"n{i}l{j}"
            fname = layers[j]
            opts: dict[str, Any] = {
                "node-name": name, "driver": "raw" if fname.endswith(".raw") else "qcow2",
                "read-only": s.read_only,
                "file": {"driver": "file", "filename": str(workdir / fname),
                         "node-name": f"{name}-file"}}
            if s.named and opts["driver"] == "qcow2":
                opts["backing"] = below
            engine.execute("blockdev-add", opts)
            sent[name] = opts
            below = name
        if s.drive:
            engine.add_backend(f"drive{i}", f"n{i}l0", writable=not s.read_only)
    return sent


def snapshot(engine: Engine) -> GraphSnapshot:
    return GraphSnapshot.from_qmp(engine.execute("x-debug-query-block-graph"),
                                  engine.execute("query-named-block-nodes", {"flat": True}),
                                  engine.execute("query-block-jobs"))


def _rule_behind(err: BaseException) -> rules.RuleViolation | None:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, rules.RuleViolation):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def wait_job(engine: Engine, job_id: str, until: tuple[str, ...], timeout: float = 10,
             events: list[dict[str, Any]] | None = None) -> None:
    """Poll until the job reaches ``until``; a failure seen in ``events`` (an auto-dismissed
    job is gone from query-jobs, its error only in BLOCK_JOB_COMPLETED) raises QMPError."""
    deadline = time.monotonic() + timeout
    while True:
        # Query first, then read the events: the job emits BLOCK_JOB_COMPLETED before it
        # can vanish from query-jobs, so a job found gone has its failure in ``events``
        # already (read the other way round, a job failing in between looked like success).
        jobs = {j["id"]: j for j in engine.execute("query-jobs")}
        for ev in list(events or ()):
            data = ev.get("data", {})
            if ev["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED") and \
                    data.get("device") == job_id and (data.get("error") or
                                                      ev["event"] == "BLOCK_JOB_CANCELLED"):
                raise QMPError("GenericError", f"job {job_id} failed: {data.get('error')}")
        job = jobs.get(job_id)
        status = job["status"] if job else "null"
        if status in until:
            return
        if job and job.get("error"):
            raise QMPError("GenericError", f"job {job_id} failed: {job['error']}")
        if time.monotonic() > deadline:
            raise PromiseBroken(f"job {job_id} did not reach {until} (is {status})")
        time.sleep(0.005)


def structure(graph: GraphSnapshot) -> tuple[Any, ...]:
    """Nodes (flags, header names) and links — what a failed plan must leave as it was."""
    nodes = sorted((k, n.kind, n.driver, n.read_only, n.header_backing)
                   for k, n in graph.nodes.items())
    return tuple(nodes), tuple(sorted((e.parent, e.role, e.child) for e in graph.edges))


def run_intent(engine: Engine, intent: Any, events: list[dict[str, Any]] | None = None,
               known: dict[str, dict[str, Any]] | None = None) -> Outcome:
    """Plan ``intent`` as the editor would (``known``: the options sent so far, updated
    with what the plan adds and reopens) and run it on the engine."""
    out = Outcome(intent)
    before = snapshot(engine)
    plan = plan_intent(PlanContext(before, known_options=dict(known or {})), intent)
    if plan.refusals:
        out.refused = True
        return out
    for step in plan.steps:
        step_before = snapshot(engine)
        try:
            if isinstance(step, QmpCommand):
                engine.execute(step.command, dict(step.arguments or {}))
            else:
                assert isinstance(step, WaitJob)
                wait_job(engine, step.job_id, step.until, events=events)
                if step.dismiss:
                    engine.execute("job-dismiss", {"id": step.job_id})
        except QMPError as err:
            out.failed = f"{getattr(step, 'command', 'wait')}: {err}"
            rule = _rule_behind(err)
            if rule is not None:
                raise PromiseBroken(
                    f"preflight accepted {intent!r} but the engine refused step {step!r} "
                    f"with a rule ({type(rule).__name__}): {err}") from err
            now = snapshot(engine)
            diff = step_before.diff(now)
            if isinstance(step, QmpCommand) and not diff.empty:
                raise PromiseBroken(
                    f"failed step {step!r} ({err}) changed the graph: {diff}") from err
            if isinstance(step, WaitJob) and structure(now) != structure(before):
                raise PromiseBroken(f"the job of {intent!r} failed ({err}) but the graph "
                                    f"changed: {before.diff(now)}") from err
            return out
        out.steps += 1
    after = snapshot(engine)
    wrong = plan.expected.mismatches(after)
    if wrong:
        raise PromiseBroken(f"{intent!r} executed but the graph differs from the plan: {wrong}")
    if known is not None:
        known.update({k: dict(v) for k, v in {**plan.added, **plan.reopened}.items()})
    return out


def intent_from(kind: int, a: str, b: str, flag: bool, n: int, workdir: Path) -> Any:
    """One intent of ``kind`` (0..6) over names ``a``/``b``."""
    match kind % 7:
        case 0:
            return SetBacking(a, b)
        case 1:
            return DetachBacking(a)
        case 2:
            return SetReadOnly(a, flag)
        case 3:
            return ExternalSnapshot(a, f"snap{n}", str(workdir / f"snap{n}.qcow2"))
        case 4:
            return Stream(a, b if flag else None, job_id=f"stream{n}")
        case 5:
            return Commit(a, b if flag else None, job_id=f"commit{n}")
        case _:
            return Delete(a)


def check_case(recipe: GraphRecipe, intents: list[tuple[int, int, int, bool]],
               workdir: Path) -> list[Outcome]:
    """Build the recipe's graph and run the intents (``(kind, a, b, flag)`` indices)."""
    make_files(workdir)
    engine = Engine(rng_seed=1)
    events: list[dict[str, Any]] = []
    engine.add_listener(events.append)
    try:
        known = build(engine, recipe, workdir)
        names = [*node_names(recipe), "nosuch"]
        outcomes = []
        for n, (kind, a, b, flag) in enumerate(intents):
            intent = intent_from(kind, names[a % len(names)], names[b % len(names)], flag, n,
                                 workdir)
            outcomes.append(run_intent(engine, intent, events, known))
        return outcomes
    finally:
        engine.close()

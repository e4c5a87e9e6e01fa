"""Preflight against QEMU: every edit the editor offers, planned, checked, and sent.

A :class:`GraphRun` keeps one graph of the corpus running in a QEMU process. For an
edit it builds the plan exactly as ``blockgraph plan --no-check`` does, asks preflight
for its verdict, then sends the plan to QEMU and records what QEMU did: accepted, or
refused with its error text (a command's ``desc``, or a job's error). After an edit
that changed anything the process is thrown away and the graph started again from
its pristine images, so every edit meets the same graph.

Edits name nodes by *identities* that survive a restart — a user-given name, or the
path to an auto-named node from one that has a name (``top/backing/file``) — since
QEMU draws new ``#blockNNN`` names in every process.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from gui.planner import PlanContext, plan_intent
from gui.planner.intents import (
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
from gui.planner.plan import Plan, QmpCommand, WaitJob
from tests.corpus.graphs import CorpusGraph
from tests.corpus.process import QemuProcess, QmpFailure

ACCEPTED = "accepted"
DEVICE_EDITS = ("eject", "change-medium", "open-tray", "close-tray", "remove-medium",
                "insert-medium")
#: an auto-generated node name in an error text
_AUTO_NAME = re.compile(r"#block\d+")
JOB_SECONDS = 30.0


def substitute(value: Any, directory: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{dir}", str(directory))
    if isinstance(value, dict):
        return {k: substitute(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, directory) for v in value]
    return value


# -- identities ----------------------------------------------------------------------------
def identities(graph: GraphSnapshot) -> dict[str, str]:
    """key -> identity for every node: names as they are, auto-named block nodes as
    the path from the nearest named parent (parents' identities first, then role)."""
    out: dict[str, str] = {}
    for key, node in graph.nodes.items():
        if not node.auto_named and not key.startswith("backend:#"):
            out[key] = key
    changed = True
    while changed:
        changed = False
        for key in graph.nodes:
            if key in out:
                continue
            paths = sorted(f"{out[e.parent]}/{e.role}" for e in graph.parents(key)
                           if e.parent in out)
            if paths:
                out[key] = paths[0]
                changed = True
    for key in graph.nodes:
        out.setdefault(key, key)
    return out


@dataclass(frozen=True)
class Edit:
    """An intent with nodes named by identity; ``resolve`` gives the intent on a graph."""

    kind: str
    node: str
    other: str | None = None
    flag: bool | None = None

    def resolve(self, graph: GraphSnapshot, workdir: Path, serial: int) -> Any:
        keys = {ident: key for key, ident in identities(graph).items()}
        node = self.node if self.kind in DEVICE_EDITS else keys[self.node]
        other = keys.get(self.other) if self.other is not None else None
        match self.kind:
            case "rebase":
                return SetBacking(node, other)
            case "detach":
                return DetachBacking(node)
            case "snapshot":
                return ExternalSnapshot(node, f"snap{serial}", str(workdir / f"snap{serial}.qcow2"))
            case "stream":
                return Stream(node, other)
            case "commit":
                return Commit(node, other)
            case "read-only":
                return SetReadOnly(node, bool(self.flag))
            case "delete":
                return Delete(node)
            case "eject":
                return ChangeMedium(node, None)
            case "change-medium":
                return ChangeMedium(node, str(workdir / str(self.other)))
            case "open-tray":
                return OpenTray(node)
            case "close-tray":
                return CloseTray(node)
            case "remove-medium":
                return RemoveMedium(node)
            case "insert-medium":
                return InsertMedium(node, str(other))
        raise ValueError(self.kind)

    def __str__(self) -> str:
        tail = f" {self.other}" if self.other is not None else ""
        flag = f" {'on' if self.flag else 'off'}" if self.flag is not None else ""
        return f"{self.kind} {self.node}{tail}{flag}"


def edits_on(graph: GraphSnapshot, devices: Iterable[str], media: tuple[str, ...]
             ) -> Iterator[Edit]:
    """Every edit the editor offers on every node of ``graph``, and on every device."""
    ident = identities(graph)
    blocks = [ident[n.key] for n in graph.block_nodes()]
    for node in blocks:
        others = [b for b in blocks if b != node]
        for other in others:
            yield Edit("rebase", node, other)
        yield Edit("detach", node)
        yield Edit("snapshot", node)
        yield Edit("stream", node)
        for base in others:
            yield Edit("stream", node, base)
        for base in others:
            yield Edit("commit", node, base)
        yield Edit("read-only", node, flag=True)
        yield Edit("read-only", node, flag=False)
        yield Edit("delete", node)
    for device in devices:
        yield Edit("eject", device)
        for image in media:
            yield Edit("change-medium", device, image)
        yield Edit("open-tray", device)
        yield Edit("close-tray", device)
        yield Edit("remove-medium", device)
        for node in blocks:
            yield Edit("insert-medium", device, node)


# -- running a graph -----------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    edit: str
    preflight: str
    qemu: str
    mismatches: tuple[str, ...] = ()

    @property
    def agrees(self) -> bool:
        return self.preflight == self.qemu and not self.mismatches


class GraphRun:
    """One corpus graph kept running; :meth:`check` tries an edit on it."""

    def __init__(self, spec: CorpusGraph, root: Path) -> None:
        self.spec = spec
        self.pristine = root / "pristine"
        self.workdir = root / "work"
        # images are made where QEMU opens them (absolute backing names in their
        # headers point there), then kept aside to start again from
        self.workdir.mkdir(parents=True)
        spec.images(self.workdir)
        shutil.copytree(self.workdir, self.pristine)
        self.process: QemuProcess | None = None
        self.snapshot: GraphSnapshot | None = None
        self.devices: dict[str, rules.Device] = {}
        self.commands: frozenset[str] = frozenset()
        self.starts = 0
        self.serial = 0

    # the process ------------------------------------------------------------------------
    def start(self) -> GraphSnapshot:
        self.stop()
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        shutil.copytree(self.pristine, self.workdir)
        proc = QemuProcess(self.spec.program, _args(self.spec, self.workdir), self.workdir)
        self.process = proc
        self.starts += 1
        for command, arguments in self.spec.setup:
            proc.execute(command, substitute(arguments, self.workdir))
        for job, status in self.spec.settle.items():
            wait_job(proc, job, (status,))
        if not self.commands:
            self.commands = frozenset(c["name"] for c in proc.execute("query-commands"))
        self.snapshot = read_graph(proc)
        self.devices = rules.devices_from_query_block(proc.execute("query-block"))
        return self.snapshot

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def context(self) -> PlanContext:
        assert self.snapshot is not None
        return PlanContext(self.snapshot, commands=self.commands, devices=self.devices)

    # one edit ---------------------------------------------------------------------------
    def check(self, edit: Edit) -> Outcome:
        if self.process is None:
            self.start()
        assert self.snapshot is not None and self.process is not None
        self.serial += 1
        intent = edit.resolve(self.snapshot, self.workdir, self.serial)
        ctx = self.context()
        checked = plan_intent(ctx, intent)
        preflight = str(checked.refusals[0]) if checked.refusals else ACCEPTED
        plan = checked if checked.ok else plan_intent(ctx, intent, check=False)
        qemu, changed = run_plan(self.process, plan)
        qemu = _AUTO_NAME.sub(lambda m: m.group(0) if m.group(0) in self.snapshot.nodes
                              else rules.NEW_AUTO_NAME, qemu)
        mismatches: tuple[str, ...] = ()
        if changed:
            if qemu == ACCEPTED:
                mismatches = tuple(plan.expected.mismatches(read_graph(self.process)))
            self.stop()
        return Outcome(str(edit), preflight, qemu, mismatches)


def _args(spec: CorpusGraph, directory: Path) -> list[str]:
    return [a.replace("{dir}", str(directory)) for a in spec.args(directory)]


def read_graph(proc: QemuProcess) -> GraphSnapshot:
    """The graph as the editor's session reads it (the same three queries)."""
    debug = proc.execute("x-debug-query-block-graph")
    nodes = proc.execute("query-named-block-nodes", {"flat": True})
    jobs = proc.execute("query-block-jobs")
    return GraphSnapshot.from_qmp(debug, nodes, jobs)


def run_plan(proc: QemuProcess, plan: Plan) -> tuple[str, bool]:
    """Send ``plan``; (ACCEPTED or QEMU's error text, whether anything changed)."""
    changed = False
    for step in plan.steps:
        if isinstance(step, QmpCommand):
            try:
                proc.execute(step.command, step.arguments)
            except QmpFailure as exc:
                return exc.desc, changed
            changed = True
        elif isinstance(step, WaitJob):
            error = wait_job(proc, step.job_id, step.until)
            if step.dismiss:
                try:
                    proc.execute("job-dismiss", {"id": step.job_id})
                except QmpFailure as exc:
                    return exc.desc, changed
            if error:
                return error, changed
    return ACCEPTED, changed


def wait_job(proc: QemuProcess, job_id: str, until: tuple[str, ...]) -> str | None:
    """Wait until ``job_id`` reaches a status in ``until``; returns its error, if any."""
    deadline = time.monotonic() + JOB_SECONDS
    seen = 0
    error: str | None = None
    while True:
        for event in proc.events[seen:]:
            data: Mapping[str, Any] = event.get("data") or {}
            if event["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED") \
                    and data.get("device") == job_id:
                error = data.get("error") or (
                    "cancelled" if event["event"] == "BLOCK_JOB_CANCELLED" else None)
            if event["event"] == "JOB_STATUS_CHANGE" and data.get("id") == job_id:
                if data["status"] in until:
                    if data["status"] == "concluded":
                        error = error or _job_error(proc, job_id)
                    return error
                if data["status"] == "null":
                    return error or f"job {job_id} ended before {'/'.join(until)}"
        seen = len(proc.events)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"job {job_id} did not become {'/'.join(until)}")
        proc.wait_event(remaining)


def _job_error(proc: QemuProcess, job_id: str) -> str | None:
    for job in proc.execute("query-jobs"):
        if job["id"] == job_id:
            return job.get("error")
    return None

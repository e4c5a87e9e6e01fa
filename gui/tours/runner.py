"""Running a tour: scratch images, one step at a time, next / previous / restart.

A :class:`TourRunner` owns a fresh temporary directory with the tour's images (made with
:mod:`engine.formats`, never touching the user's files) and a peer from
``peer_factory`` (a fresh bundled engine, normally). :meth:`TourRunner.next` runs the
next step and returns a :class:`StepResult` that says what was sent, what came back,
whether that is what the tour promised, and which nodes to highlight.

Steps change the peer's graph, which cannot be rewound, so :meth:`previous` and
:meth:`restart` start over — new scratch directory, new peer — and replay the steps
before the target quietly. That keeps every position reproducible.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.formats import create_qcow2, create_raw, open_image
from engine.graph.snapshot import GraphSnapshot
from gui.scripting.peer import PeerCommandError, PeerError, ScriptPeer
from gui.scripting.script import to_qmp_shell
from gui.tours.model import GraphCheck, Tour, TourStep

PeerFactory = Callable[[], Awaitable[ScriptPeer]]


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` in every string inside ``value`` (dicts and lists too)."""
    if isinstance(value, str):
        for k, v in variables.items():
            value = value.replace("${" + k + "}", v)
        return value
    if isinstance(value, Mapping):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, variables) for v in value]
    return value


def create_images(tour: Tour, directory: Path) -> list[str]:
    """Create the tour's scratch images in ``directory``; returns one line per image."""
    made = []
    for spec in tour.setup.images:
        path = directory / spec.file
        if spec.format == "qcow2":
            create_qcow2(path, spec.size, backing_file=spec.backing,
                         backing_format=spec.backing_format)
        else:
            create_raw(path, spec.size)
        if spec.data:
            with open_image(path, spec.format, writable=True) as img:
                for w in spec.data:
                    if w.pattern:
                        img.write(w.offset, bytes([w.pattern]) * w.length)
                    else:
                        img.write_zeroes(w.offset, w.length)
        backing = f", backing {spec.backing}" if spec.backing else ""
        made.append(f"{spec.file} ({spec.format}, {spec.size >> 20} MiB{backing})")
    return made


@dataclass(frozen=True)
class StepResult:
    """What one step did and whether it matched the tour."""

    index: int
    step: TourStep
    sent: dict[str, Any] | None = None
    returned: Any = None
    error_class: str | None = None
    error: str | None = None
    waited: str | None = None
    problems: tuple[str, ...] = ()
    snapshot: GraphSnapshot | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def qmp_json(self) -> str:
        return json.dumps(self.sent) if self.sent else ""

    @property
    def qmp_shell(self) -> str:
        if not self.sent:
            return ""
        return to_qmp_shell(self.sent["execute"], self.sent.get("arguments"))

    @property
    def outcome(self) -> str:
        if self.sent is None:
            return "(no command)"
        if self.error is not None:
            return f"error {self.error_class}: {self.error}"
        return f"returned {json.dumps(self.returned)}"


class TourRunner:
    """Steps through one tour against peers made by ``peer_factory``."""

    def __init__(self, tour: Tour, peer_factory: PeerFactory, *,
                 on_snapshot: Callable[[GraphSnapshot], None] | None = None) -> None:
        self.tour = tour
        self.peer_factory = peer_factory
        self.on_snapshot = on_snapshot
        self.peer: ScriptPeer | None = None
        self.directory: Path | None = None
        self.setup_lines: list[str] = []
        self.results: list[StepResult] = []
        self.snapshot: GraphSnapshot | None = None

    # -- position -----------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Number of steps done (the index of the next step)."""
        return len(self.results)

    @property
    def finished(self) -> bool:
        return self.position >= len(self.tour.steps)

    @property
    def next_step(self) -> TourStep | None:
        return None if self.finished else self.tour.steps[self.position]

    @property
    def last(self) -> StepResult | None:
        return self.results[-1] if self.results else None

    @property
    def variables(self) -> dict[str, str]:
        return {"DIR": str(self.directory)} if self.directory else {}

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Fresh scratch directory and peer; no step is run."""
        await self.close()
        self.directory = Path(tempfile.mkdtemp(prefix=f"blockgraph-tour-{self.tour.name}-"))
        self.setup_lines = create_images(self.tour, self.directory)
        self.peer = await self.peer_factory()
        self.results = []
        await self._refresh()

    async def close(self) -> None:
        if self.peer is not None:
            peer, self.peer = self.peer, None
            await peer.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def abandon(self) -> None:
        """Like :meth:`close`, without awaiting the peer (Qt's loop is gone)."""
        peer, self.peer = self.peer, None
        abandon = getattr(peer, "abandon", None)
        if abandon is not None:
            abandon()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    async def restart(self) -> None:
        await self.start()

    async def goto(self, position: int) -> StepResult | None:
        """Start over and run the first ``position`` steps (quietly)."""
        position = max(0, min(position, len(self.tour.steps)))
        await self.start()
        while self.position < position:
            await self.next()
        return self.last

    async def previous(self) -> StepResult | None:
        """Back one step: start over and replay up to the step before the last one."""
        return await self.goto(self.position - 1)

    async def run_all(self) -> list[StepResult]:
        if self.peer is None:
            await self.start()
        while not self.finished:
            await self.next()
        return list(self.results)

    # -- one step -----------------------------------------------------------------------
    async def next(self) -> StepResult:
        if self.peer is None:
            await self.start()
        assert self.peer is not None
        if self.finished:
            raise IndexError("the tour is finished")
        index = self.position
        step = self.tour.steps[index]
        variables = self.variables
        problems: list[str] = []
        sent = returned = error_class = error = waited = None
        if step.command is not None:
            args = substitute(dict(step.arguments), variables) if step.arguments else None
            sent = {"execute": step.command, **({"arguments": args} if args else {})}
            try:
                returned = await self.peer.execute(step.command, args)
            except PeerCommandError as exc:
                error_class, error = exc.error_class, exc.desc
            problems += _outcome_problems(step, error_class, error)
        if step.wait is not None and not problems:
            try:
                waited = await self.peer.wait_job(step.wait.job, step.wait.until,
                                                  step.wait.timeout)
            except PeerError as exc:
                problems.append(str(exc))
        snapshot = await self._refresh()
        if not step.check.empty and snapshot is not None:
            problems += check_graph(snapshot, substitute_check(step.check, variables))
        result = StepResult(index, step, sent, returned, error_class, error, waited,
                            tuple(problems), snapshot)
        self.results.append(result)
        return result

    async def _refresh(self) -> GraphSnapshot | None:
        assert self.peer is not None
        self.snapshot = await self.peer.graph()
        if self.on_snapshot is not None:
            self.on_snapshot(self.snapshot)
        return self.snapshot


def _outcome_problems(step: TourStep, error_class: str | None, error: str | None) -> list[str]:
    exp = step.expect
    if exp.ok and error is not None:
        return [f"expected {step.command} to succeed, but it failed: {error}"]
    if not exp.ok and error is None:
        return [f"expected {step.command} to fail with \"{exp.error}\", but it succeeded"]
    if not exp.ok and error != exp.error:
        return [f"expected the error \"{exp.error}\", got \"{error}\""]
    if not exp.ok and exp.error_class and error_class != exp.error_class:
        return [f"expected error class {exp.error_class}, got {error_class}"]
    return []


def substitute_check(check: GraphCheck, variables: Mapping[str, str]) -> GraphCheck:
    return GraphCheck(substitute(dict(check.backing), variables), check.present, check.absent,
                      substitute(dict(check.header_backing), variables), check.read_only)


def check_graph(snapshot: GraphSnapshot, check: GraphCheck) -> list[str]:
    """Every fact of ``check`` that ``snapshot`` does not show, as a sentence."""
    problems = []
    nodes = snapshot.nodes
    for name in check.present:
        if name not in nodes:
            problems.append(f"node {name} should exist, but it does not")
    for name in check.absent:
        if name in nodes:
            problems.append(f"node {name} should be gone, but it is still there")
    for name, want in check.backing.items():
        if name not in nodes:
            problems.append(f"node {name} should exist (to check its backing), but it does not")
            continue
        got = snapshot.backing(name)
        if got != want:
            problems.append(f"{name}'s backing should be {want or 'nothing'}, "
                            f"but it is {got or 'nothing'}")
    for name, want in check.header_backing.items():
        if name not in nodes:
            problems.append(f"node {name} should exist (to check its header), but it does not")
            continue
        got = nodes[name].header_backing
        if (got or None) != (want or None):
            problems.append(f"{name}'s header should name '{want or ''}' as backing file, "
                            f"but it names '{got or ''}'")
    for name, want_ro in check.read_only.items():
        if name not in nodes:
            problems.append(f"node {name} should exist (to check read-only), but it does not")
        elif nodes[name].read_only != want_ro:
            problems.append(f"{name} should be {'read-only' if want_ro else 'read-write'}")
    return problems

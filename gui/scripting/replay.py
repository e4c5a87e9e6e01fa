"""Running a QMP script against a peer, checking each command ends as recorded.

:func:`replay` sends the commands of a :class:`~gui.scripting.script.Script` in order,
waits where the script says so (explicit waits and recorded job statuses), and reports
each step. A command whose outcome differs from the recording (an error where the
recording succeeded, success or another error text where it failed) is a *divergence*;
a command that fails with no recorded outcome is a failure. Both stop the replay
unless ``keep_going``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.scripting.peer import PeerCommandError, PeerError, ScriptPeer
from gui.scripting.script import Script, ScriptCommand, Step


@dataclass(frozen=True)
class StepReport:
    step: Step
    ok: bool
    outcome: str
    returned: Any = None
    problem: str = ""


@dataclass
class ReplayReport:
    steps: list[StepReport] = field(default_factory=list)
    snapshot: GraphSnapshot | None = None
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and not self.stopped


async def replay(script: Script, peer: ScriptPeer, *, keep_going: bool = False,
                 on_step: Callable[[StepReport], None] | None = None) -> ReplayReport:
    report = ReplayReport()
    for step in script.steps:
        r = await _run_step(step, peer)
        report.steps.append(r)
        if on_step is not None:
            on_step(r)
        if not r.ok and not keep_going:
            report.stopped = True
            break
    report.snapshot = await peer.graph()
    return report


async def _run_step(step: Step, peer: ScriptPeer) -> StepReport:
    if not isinstance(step, ScriptCommand):
        try:
            status = await peer.wait_job(step.job, step.until, step.timeout)
        except PeerError as exc:
            return StepReport(step, False, f"wait failed: {exc}", problem=str(exc))
        return StepReport(step, True, f"job {step.job} reached '{status}'")
    expected = step.expected
    try:
        returned = await peer.execute(step.command, step.arguments)
    except PeerCommandError as exc:
        outcome = f"error {exc.error_class}: {exc.desc}"
        if expected is not None and not expected.ok:
            if exc.desc == expected.error:
                return StepReport(step, True, outcome + " (as recorded)")
            return StepReport(step, False, outcome,
                              problem=f"recorded error was \"{expected.error}\"")
        if expected is None:
            return StepReport(step, False, outcome, problem="the command failed")
        return StepReport(step, False, outcome, problem="the command succeeded when recorded")
    if expected is not None and not expected.ok:
        return StepReport(step, False, "returned", returned,
                          problem=f"recorded error was \"{expected.error}\"")
    return StepReport(step, True, "returned", returned)

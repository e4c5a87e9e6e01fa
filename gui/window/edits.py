"""Edits: intents in, plans reviewed and executed, one undo entry per executed plan.

The GUI never builds QMP for an edit: a gesture or menu action becomes an intent
(:mod:`gui.planner.intents`, made by :mod:`gui.window.editing`), the executor
(:mod:`gui.executor`) plans it on the session's graph, the user reviews the plan and
its consequences in one dialog (:mod:`gui.widgets.plan_review`), the executor runs it
and re-reads the graph, and any difference from what the plan promised is reported.
Edits run one at a time, in the order they were asked for.

Undo tells the truth:

* an edit is pushed as undoable only if its inverse passes preflight on the graph the
  edit left (read back from the peer); where that graph can be told before the edit
  runs (link and flag changes), an inverse that would be refused — a re-point away
  from a node QEMU then frees — makes the edit irreversible *before* it runs, and the
  review says why;
* undo and redo run first and move the stack only when they succeeded: a failed undo
  stays where it was, with QEMU's error shown;
* the stack is cleared when the peer changes (another session, or a reconnection:
  the peer may be another process) and its actions are disabled while disconnected.

The ``QUndoStack`` is the history only: its commands do nothing when Qt calls them,
the controller runs the plans and then moves the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.graph.rules import Device
from gui.executor import ExecutionReport, PlanExecutor
from gui.executor.allocation import local_allocation
from gui.planner import PlanContext, check_plan, plan_intent
from gui.planner.consequences import (
    Consequences,
    consequences_of,
    dangers,
    undo_refusals,
)
from gui.planner.intents import MEDIA_INTENTS, Delete, DetachBacking
from gui.planner.plan import Plan
from gui.session import (
    CommandFailed,
    Disconnected,
    JobFailed,
    PreflightRefused,
    SessionError,
)
from gui.session.client import background_traffic
from gui.widgets.dialogs import Prompter
from gui.widgets.plan_review import Review
from gui.window.connection import WindowConnection

log = logging.getLogger(__name__)


#: plans an edit again on the graph of the moment (for redo)
Replan = Callable[[PlanContext], Plan]


class PlanCommand(QUndoCommand):
    """One executed plan on the undo stack (the controller runs it; see the module)."""

    def __init__(self, plan: Plan, replan: Replan) -> None:
        super().__init__(plan.summary)
        self.plan = plan
        self.replan = replan

    def redo(self) -> None:
        """Nothing: the controller has run the plan before it moves the stack."""

    def undo(self) -> None:
        """Nothing: the controller has run the inverse before it moves the stack."""


def reasons_text(reasons: Any) -> str:
    return "; ".join(str(r) for r in reasons)


def run_state_of(status: Any) -> str:
    """A ``query-status`` reply's run state (running, paused, prelaunch…), or ""."""
    if not isinstance(status, dict):
        return ""
    return str(status.get("status", ""))


class EditController(QObject):
    status = Signal(str)
    failed = Signal(str, str)  # title, message
    executed = Signal(object)  # ExecutionReport
    #: an edit started or ended (undo/redo actions follow it)
    runningChanged = Signal(bool)
    #: an edit succeeded (the status bar's last error is stale now)
    succeeded = Signal()
    #: a plan is about to be sent
    started = Signal(object)
    #: reader key -> readable name, for the review (backends by device or export)
    labels: dict[str, str]

    def __init__(self, connection: WindowConnection, prompter: Prompter,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.prompter = prompter
        self.undo_stack = QUndoStack(self)
        self.labels = {}
        #: the peer's devices (``query-block``) as read for the media edit being planned;
        #: None for other edits, which are checked against the graph
        self.devices: Mapping[str, Device] | None = None
        self._running = False
        self._turn = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._running

    def _set_running(self, on: bool) -> None:
        if on != self._running:
            self._running = on
            self.runningChanged.emit(on)

    def reset(self, why: str = "") -> None:
        """A new peer: the old undo history does not apply to it."""
        had = self.undo_stack.count()
        self.undo_stack.clear()
        if had and why:
            self.status.emit(f"undo history cleared: {why}")

    def _executor(self) -> PlanExecutor:
        session = self.connection.session
        if session is None or not session.connected:
            raise Disconnected("not connected")
        return PlanExecutor(session, self.devices)

    async def _read_devices(self, intent: Any) -> None:
        """Read the peer's devices afresh before a media edit is planned or run (trays
        and media change without the graph showing it); forget them for other edits."""
        self.devices = None
        session = self.connection.session
        caps = session.capabilities if session is not None else None
        if (not isinstance(intent, MEDIA_INTENTS) or session is None or caps is None
                or not caps.has("query-block")):
            return
        with contextlib.suppress(SessionError), background_traffic():
            self.devices = await PlanExecutor(session).read_devices()

    # -- entry points -----------------------------------------------------------------
    def request(self, intent: Any, *, destructive: bool = False, action: str = "Execute"
                ) -> None:
        """Plan, review and run ``intent`` in the background, after the edits before it."""
        self.connection.spawn(self.perform(intent, destructive=destructive, action=action),
                              "edit")

    def request_plan(self, plan: Plan, replan: Replan, *, destructive: bool = False
                     ) -> None:
        """Review and run an already built plan (staged edits, several images);
        ``replan`` builds it again for a redo."""
        self.connection.spawn(self.perform_plan(plan, replan, destructive=destructive),
                              "edit")

    def undo(self) -> None:
        self.connection.spawn(self.undo_last(), "undo")

    def redo(self) -> None:
        self.connection.spawn(self.redo_next(), "redo")

    # -- planning and review ----------------------------------------------------------
    def plan(self, intent: Any) -> Plan | None:
        """Plan ``intent`` on the current graph; None (and an explanation) if refused."""
        try:
            plan = self._executor().plan(intent)
        except SessionError as exc:
            self.failed.emit("Not connected", str(exc))
            return None
        if not plan.ok:
            self.refused(plan)
            return None
        return plan

    def refused(self, plan: Plan) -> None:
        text = reasons_text(plan.refusals)
        self.status.emit(f"refused: {text}")
        self.failed.emit(f"Cannot {plan.summary[:1].lower()}{plan.summary[1:]}", text)

    async def consequences(self, plan: Plan) -> tuple[Consequences, list[Exception]]:
        """The plan's consequences (image maps read in a thread) and the refusals its
        inverse would meet on the graph it leaves."""
        ctx = self._executor().context()
        found = await asyncio.to_thread(consequences_of, ctx, plan, local_allocation,
                                        dict(self.labels))
        return found, undo_refusals(ctx, plan, found)

    async def _run_state(self) -> str:
        """The VM's run state (``query-status``), or "" when the peer has none."""
        session = self.connection.session
        caps = session.capabilities if session is not None else None
        if session is None or caps is None or not caps.has("query-status"):
            return ""
        with contextlib.suppress(SessionError), background_traffic():
            return run_state_of(await session.execute("query-status"))
        return ""

    async def review_of(self, plan: Plan, *, destructive: bool = False,
                        action: str = "Execute") -> Review:
        found, refusals = await self.consequences(plan)
        irreversible = plan.irreversible if plan.inverse is None else None
        if refusals:
            irreversible = (f"its undo would be refused afterwards: {reasons_text(refusals)}"
                            + (f" ({', '.join(found.freed)} freed by QEMU)"
                               if found.freed else ""))
        danger = dangers(found, plan.intent, "")
        if danger:              # say how the VM stands: running, paused…
            danger = dangers(found, plan.intent, await self._run_state())
        return Review(plan, found, irreversible, tuple(plan.warnings), tuple(danger),
                      destructive or isinstance(plan.intent, Delete | DetachBacking), action)

    # -- execution --------------------------------------------------------------------
    async def perform(self, intent: Any, *, destructive: bool = False,
                      action: str = "Execute") -> ExecutionReport | None:
        async with self._turn:
            await self._read_devices(intent)
            plan = self.plan(intent)
            if plan is None:
                return None
            return await self._review_and_run(plan, lambda ctx: plan_intent(ctx, intent),
                                              destructive, action)

    async def perform_plan(self, plan: Plan, replan: Replan, *, destructive: bool = False
                           ) -> ExecutionReport | None:
        async with self._turn:
            if not plan.ok:
                self.refused(plan)
                return None
            return await self._review_and_run(plan, replan, destructive, "Execute")

    async def _review_and_run(self, plan: Plan, replan: Replan, destructive: bool,
                              action: str) -> ExecutionReport | None:
        try:
            review = await self.review_of(plan, destructive=destructive, action=action)
        except SessionError as exc:
            self.failed.emit("Not connected", str(exc))
            return None
        if not self.prompter.review(review):
            self.status.emit("cancelled")
            return None
        report = await self._execute(plan, plan.summary)
        if report is None:
            return None
        why = self._undo_blocked(plan, report, review)
        if why is None:
            self.undo_stack.push(PlanCommand(plan, replan))
        elif plan.inverse is not None or review.irreversible:
            self.status.emit(f"done: {plan.summary} — cannot be undone: {why}")
        return report

    def _undo_blocked(self, plan: Plan, report: ExecutionReport, review: Review) -> str | None:
        """Why ``plan`` cannot go on the undo stack now it ran (None: it can)."""
        if plan.inverse is None:
            return plan.irreversible or "no inverse"
        if review.irreversible:
            return review.irreversible
        try:
            ctx = self._executor().context()
        except SessionError as exc:
            return str(exc)
        refusals = check_plan(ctx, plan.inverse)
        return f"its undo is refused: {reasons_text(refusals)}" if refusals else None

    async def _execute(self, plan: Plan, what: str) -> ExecutionReport | None:
        self._set_running(True)
        self.status.emit(f"running: {what}…")
        self.started.emit(plan)
        try:
            await self._read_devices(plan.intent)
            report = await self._executor().run(plan)
        except PreflightRefused as exc:
            self._fail(what, f"refused before sending: {reasons_text(exc.reasons)}")
            return None
        except CommandFailed as exc:
            self._fail(what, f"{exc.desc}")
            return None
        except JobFailed as exc:
            if exc.status == "cancelled" or exc.error == "cancelled":
                self.status.emit(f"cancelled: {what} (job {exc.job_id} was cancelled)")
                return None
            self._fail(what, str(exc))
            return None
        except Disconnected as exc:
            self._fail(what, f"{exc} — the graph is re-read on reconnect")
            return None
        except SessionError as exc:
            self._fail(what, str(exc))
            return None
        finally:
            self._set_running(False)
        if report.mismatches:
            text = "; ".join(report.mismatches)
            self.status.emit(f"done, but the graph differs from the plan: {text}")
            self.failed.emit("The graph differs from what was planned", text)
        else:
            self.status.emit(f"done: {what}")
            self.succeeded.emit()
        self.executed.emit(report)
        return report

    def _fail(self, what: str, text: str) -> None:
        self.status.emit(f"failed: {text}")
        self.failed.emit(f"Failed: {what}", text)

    # -- undo and redo ------------------------------------------------------------------
    def _command(self, index: int) -> PlanCommand | None:
        cmd = self.undo_stack.command(index)
        return cmd if isinstance(cmd, PlanCommand) else None

    async def undo_last(self) -> bool:
        """Run the inverse of the last edit; the stack moves back only if it worked."""
        async with self._turn:
            cmd = self._command(self.undo_stack.index() - 1)
            if cmd is None or cmd.plan.inverse is None:
                return False
            report = await self._execute(cmd.plan.inverse, f"undo {cmd.plan.summary}")
            if report is None:
                self.status.emit(f"undo failed; {cmd.plan.summary} stays done")
                return False
            self.undo_stack.undo()
            return True

    async def redo_next(self) -> bool:
        """Plan the undone edit again on the graph of now and run it; then move the stack."""
        async with self._turn:
            cmd = self._command(self.undo_stack.index())
            if cmd is None:
                return False
            try:
                plan = cmd.replan(self._executor().context())
            except SessionError as exc:
                self.failed.emit("Not connected", str(exc))
                return False
            if not plan.ok:
                self.refused(plan)
                return False
            report = await self._execute(plan, f"redo {cmd.plan.summary}")
            if report is None:
                return False
            cmd.plan = plan          # its inverse is planned on the graph of now
            self.undo_stack.redo()
            return True

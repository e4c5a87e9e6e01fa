"""Edits: intents in, plans previewed and executed, one undo entry per executed plan.

The GUI never builds QMP for an edit: a gesture or menu action becomes an intent
(:mod:`gui.planner.intents`, made by :mod:`gui.window.editing`), the executor
(:mod:`gui.executor`) plans it on the session's graph, the user sees the plan
(skippable), the executor runs it and re-reads the graph, and any difference from what
the plan promised is reported.

Undo follows ``QUndoStack``'s contract with asynchronous execution: the plan is
executed first and its :class:`PlanCommand` pushed afterwards, with a first
``redo()`` that does nothing. Undo runs the plan's inverse; redo plans the intent
again on the graph of the moment. Plans without an inverse are announced as
irreversible and confirmed before they run.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from gui.executor import ExecutionReport, PlanExecutor
from gui.planner.plan import Plan
from gui.session import (
    CommandFailed,
    Disconnected,
    JobFailed,
    PreflightRefused,
    SessionError,
)
from gui.widgets.dialogs import Prompter
from gui.window.connection import WindowConnection

log = logging.getLogger(__name__)


class PlanCommand(QUndoCommand):
    """One executed plan on the undo stack."""

    def __init__(self, controller: EditController, plan: Plan) -> None:
        super().__init__(plan.summary)
        self.controller = controller
        self.plan = plan
        self._pushed = False

    def redo(self) -> None:
        if not self._pushed:  # the plan already ran before the push
            self._pushed = True
            return
        self.controller.spawn_replay(self.plan)

    def undo(self) -> None:
        assert self.plan.inverse is not None
        self.controller.spawn_undo(self.plan)


def reasons_text(reasons: Any) -> str:
    return "; ".join(str(r) for r in reasons)


class EditController(QObject):
    status = Signal(str)
    failed = Signal(str, str)  # title, message
    executed = Signal(object)  # ExecutionReport

    def __init__(self, connection: WindowConnection, prompter: Prompter,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.prompter = prompter
        self.undo_stack = QUndoStack(self)
        self.running = False

    def reset(self) -> None:
        """A new connection: the old undo history does not apply to it."""
        self.undo_stack.clear()

    def _executor(self) -> PlanExecutor:
        session = self.connection.session
        if session is None:
            raise Disconnected("not connected")
        return PlanExecutor(session)

    # -- entry points -----------------------------------------------------------------
    def request(self, intent: Any) -> None:
        """Plan, confirm/preview and run ``intent`` in the background."""
        self.connection.spawn(self.perform(intent), "edit")

    def spawn_undo(self, plan: Plan) -> None:
        self.connection.spawn(self._run_undo(plan), "undo")

    def spawn_replay(self, plan: Plan) -> None:
        self.connection.spawn(self._run_redo(plan), "redo")

    # -- execution --------------------------------------------------------------------
    def plan(self, intent: Any) -> Plan | None:
        """Plan ``intent`` on the current graph; None (and an explanation) if refused."""
        try:
            plan = self._executor().plan(intent)
        except SessionError as exc:
            self.failed.emit("Not connected", str(exc))
            return None
        if not plan.ok:
            text = reasons_text(plan.refusals)
            self.status.emit(f"refused: {text}")
            self.failed.emit(f"Cannot {plan.summary[:1].lower()}{plan.summary[1:]}", text)
            return None
        return plan

    async def perform(self, intent: Any) -> ExecutionReport | None:
        if self.running:
            self.status.emit("another edit is still running")
            return None
        plan = self.plan(intent)
        if plan is None:
            return None
        warnings = "".join(f"\n\n⚠ {w}" for w in plan.warnings)
        if plan.irreversible:
            question = (f"{plan.summary}\n\nThis cannot be undone: {plan.irreversible}."
                        f"{warnings}\n\nContinue?")
            if not self.prompter.confirm("This cannot be undone", question):
                self.status.emit("cancelled")
                return None
        elif warnings and not self.prompter.confirm(
                "Please confirm", f"{plan.summary}{warnings}\n\nContinue?"):
            self.status.emit("cancelled")
            return None
        if not self.prompter.preview(plan):
            self.status.emit("cancelled")
            return None
        report = await self._execute(plan, plan.summary)
        if report is not None and plan.inverse is not None:
            self.undo_stack.push(PlanCommand(self, plan))
        return report

    async def _execute(self, plan: Plan, what: str) -> ExecutionReport | None:
        self.running = True
        self.status.emit(f"running: {what}…")
        try:
            report = await self._executor().run(plan)
        except PreflightRefused as exc:
            self._fail(what, f"refused before sending: {reasons_text(exc.reasons)}")
            return None
        except CommandFailed as exc:
            self._fail(what, f"{exc.desc}")
            return None
        except JobFailed as exc:
            self._fail(what, str(exc))
            return None
        except Disconnected as exc:
            self._fail(what, f"{exc} — the graph is re-read on reconnect")
            return None
        except SessionError as exc:
            self._fail(what, str(exc))
            return None
        finally:
            self.running = False
        if report.mismatches:
            text = "; ".join(report.mismatches)
            self.status.emit(f"done, but the graph differs from the plan: {text}")
            self.failed.emit("The graph differs from what was planned", text)
        else:
            self.status.emit(f"done: {what}")
        self.executed.emit(report)
        return report

    def _fail(self, what: str, text: str) -> None:
        self.status.emit(f"failed: {text}")
        self.failed.emit(f"Failed: {what}", text)

    async def _run_undo(self, plan: Plan) -> None:
        assert plan.inverse is not None
        await self._execute(plan.inverse, f"undo {plan.summary}")

    async def _run_redo(self, plan: Plan) -> None:
        again = self.plan(plan.intent)
        if again is not None:
            await self._execute(again, f"redo {plan.summary}")

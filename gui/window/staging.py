"""Staged edits: gestures collected into a pending list, applied as one atomic edit.

With Edit → Stage edits on (or Shift held while a link is dropped), link changes
(re-point, detach), read-only toggles and snapshots are not run: they join a pending
list, drawn on the canvas as ghost links and marks and listed in the Staged edits dock,
each removable. Apply plans them together (:func:`gui.planner.plan_staged`): link and
flag edits become ONE ``blockdev-reopen`` (all or nothing), snapshots ONE
``transaction`` — reviewed once, run once, one entry on the undo stack. If the graph
changed since and one item is refused now, the whole is refused and nothing is sent;
the refused item is named.

Each item is checked when it is staged, on the graph the items before it leave, so a
drag while staging is answered for the graph as it will be.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.executor import PlanExecutor
from gui.planner import PlanContext, describe, plan_staged, simulate
from gui.planner.intents import (
    LINK_INTENTS,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    SetReadOnly,
)
from gui.planner.plan import Plan
from gui.planner.preflight import check_staged
from gui.session import SessionError
from gui.widgets.canvas_marks import ABOVE, CanvasMarks, Ghost, Mark
from gui.window.connection import WindowConnection
from gui.window.edits import EditController, reasons_text

#: intents that can be staged
STAGEABLE = (*LINK_INTENTS, ExternalSnapshot)
_MARKS = "staged:"


def _kind(intent: Any) -> str:
    return "snapshots" if isinstance(intent, ExternalSnapshot) else "link edits"


class StagingController(QObject):
    """The pending list and its apply (see the module docstring)."""

    #: the pending list changed
    changed = Signal()
    #: the mode was switched on or off
    modeChanged = Signal(bool)
    message = Signal(str)
    error = Signal(str)

    def __init__(self, connection: WindowConnection, edits: EditController,
                 marks: CanvasMarks, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.edits = edits
        self.marks = marks
        self.items: list[Any] = []
        self.enabled = False
        #: index of the item refused by the last apply (-1: none)
        self.refused_index = -1
        self.refused_reason = ""

    # -- the mode ---------------------------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        if on != self.enabled:
            self.enabled = on
            self.modeChanged.emit(on)
            self.message.emit("staging: edits are collected until Apply" if on
                              else "staging off: edits run at once"
                              + (f" ({len(self.items)} still staged)" if self.items else ""))

    def wants(self, intent: Any, modifier: bool = False) -> bool:
        """Whether ``intent`` goes to the pending list rather than running now."""
        return (self.enabled or modifier) and isinstance(intent, STAGEABLE)

    # -- the list -----------------------------------------------------------------------
    def _context(self) -> PlanContext:
        session = self.connection.session
        if session is None or not session.connected:
            raise SessionError("not connected")
        return PlanExecutor(session).context()

    def staged_context(self) -> PlanContext:
        """The planning context with the staged link edits applied (for drag checks)."""
        ctx = self._context()
        links = [i for i in self.items if isinstance(i, LINK_INTENTS)]
        if not links:
            return ctx
        try:
            graph = simulate(ctx.snapshot, links)
        except (KeyError, ValueError):      # a staged node is gone: Apply will say so
            return ctx
        return PlanContext(graph, ctx.reopen_command, ctx.known_options, ctx.commands)

    def add(self, intent: Any) -> bool:
        """Stage ``intent`` if it can join the list; else say why and keep the list."""
        if not isinstance(intent, STAGEABLE):
            self.error.emit(f"{type(intent).__name__} cannot be staged")
            return False
        if self.items and _kind(self.items[0]) != _kind(intent):
            self.error.emit(f"{_kind(self.items[0])} are staged: apply or discard them "
                            f"before staging {_kind(intent)}")
            return False
        try:
            ctx = self._context()
        except SessionError as exc:
            self.error.emit(str(exc))
            return False
        reasons = check_staged(ctx, [*self.items, intent])
        if not reasons and isinstance(intent, ExternalSnapshot) and any(
                i.node == intent.node or i.overlay == intent.overlay for i in self.items):
            reasons = [ValueError(f"{intent.node} is already staged for a snapshot")]
        if reasons:
            self.error.emit(f"not staged: {reasons_text(reasons)}")
            return False
        self.items.append(intent)
        self.refused_index = -1
        self.message.emit(f"staged: {describe(ctx.snapshot, intent)} "
                          f"({len(self.items)} pending — Apply sends them at once)")
        self._changed()
        return True

    def remove(self, index: int) -> None:
        if 0 <= index < len(self.items):
            del self.items[index]
            self.refused_index = -1
            self._changed()

    def clear(self) -> None:
        if self.items:
            self.items.clear()
            self.refused_index = -1
            self._changed()

    def describe_items(self) -> list[str]:
        """One line per staged item, planned on the graph the ones before leave."""
        try:
            graph = self._context().snapshot
        except SessionError:
            return [repr(i) for i in self.items]
        out = []
        for intent in self.items:
            out.append(describe(graph, intent))
            if isinstance(intent, LINK_INTENTS):
                with contextlib.suppress(KeyError, ValueError):   # a node gone now
                    graph = simulate(graph, [intent])
        return out

    def _changed(self) -> None:
        ghosts: list[Ghost] = []
        self.marks.clear_source(_MARKS)
        for n, intent in enumerate(self.items, 1):
            match intent:
                case SetBacking(node, backing):
                    ghosts.append(Ghost(node, backing, f"staged #{n}"))
                case DetachBacking(node):
                    ghosts.append(Ghost(node, None, f"staged #{n}: detach"))
                case SetReadOnly(node, ro):
                    self.marks.set_mark(node, f"{_MARKS}{n}", Mark(
                        f"#{n} → {'read-only' if ro else 'read-write'}", "#8a5cb8", ABOVE))
                case ExternalSnapshot(node, overlay):
                    self.marks.set_mark(node, f"{_MARKS}{n}", Mark(
                        f"#{n} + snapshot {overlay}", "#8a5cb8", ABOVE))
        self.marks.set_ghosts(tuple(ghosts))
        self.changed.emit()

    # -- applying -----------------------------------------------------------------------
    def plan(self) -> Plan | None:
        if not self.items:
            return None
        return plan_staged(self._context(), list(self.items))

    def _find_refused(self, ctx: PlanContext) -> int:
        for i in range(len(self.items)):
            if check_staged(ctx, self.items[: i + 1]):
                return i
        return -1

    async def apply(self) -> bool:
        """Review and run every staged item as one edit; True when it ran."""
        if not self.items:
            return False
        items: Sequence[Any] = list(self.items)
        try:
            ctx = self._context()
        except SessionError as exc:
            self.error.emit(str(exc))
            return False
        plan = plan_staged(ctx, list(items))
        if not plan.ok:
            self.refused_index = self._find_refused(ctx)
            self.refused_reason = reasons_text(plan.refusals)
            which = (f"#{self.refused_index + 1} ({self.describe_items()[self.refused_index]})"
                     if self.refused_index >= 0 else "one item")
            self.edits.failed.emit("The staged edits are refused",
                                   f"Nothing was sent: {which} is refused now — "
                                   f"{self.refused_reason}. Remove it, or discard the list.")
            self.changed.emit()
            return False
        report = await self.edits.perform_plan(
            plan, lambda again: plan_staged(again, list(items)))
        if report is None:
            return False
        self.items = [i for i in self.items if i not in items]
        self._changed()
        return True

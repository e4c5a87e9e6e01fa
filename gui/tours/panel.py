"""The tour panel: a dock that steps through a guided tour (Help → Tours…).

The panel drives a :class:`gui.tours.runner.TourRunner` on the running asyncio loop
(qasync) and shows, for the current step, the explanation, the QMP sent (JSON and
qmp-shell), what came back and whether that is what the tour promised. It never draws
the graph itself: it emits

* ``snapshotChanged(GraphSnapshot)`` after every step (and at the start), so the
  editor's canvas can show the tour's graph;
* ``highlightChanged(tuple[str, ...])`` with the node keys the step points at;
* ``stepFinished(StepResult)`` and ``tourFinished(bool)`` (True: every step went as
  the tour says).

``attach_canvas(canvas)`` connects the first two to any object with
``show_snapshot(snapshot)`` and ``set_highlight(keys)`` methods; the editor's
:class:`gui.views.scene.GraphScene` gets them through :class:`SceneCanvas`
(``panel.attach_canvas(SceneCanvas(window.scene))``).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gui.scripting.peer import ScriptPeer, open_peer
from gui.tours.model import Tour, list_tours
from gui.tours.runner import PeerFactory, StepResult, TourRunner


async def _bundled_peer() -> ScriptPeer:
    return await open_peer(None)


class TourPanel(QDockWidget):
    """A dock with a tour chooser, the current step, and Previous / Next / Restart."""

    snapshotChanged = Signal(object)
    highlightChanged = Signal(object)
    stepFinished = Signal(object)
    tourFinished = Signal(bool)
    busyChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None, *, tours: list[Tour] | None = None,
                 peer_factory: PeerFactory | None = None) -> None:
        super().__init__("Tour", parent)
        self.setObjectName("tourPanel")
        self.tours = tours if tours is not None else list_tours()
        self.peer_factory = peer_factory or _bundled_peer
        self.runner: TourRunner | None = None
        self.busy = False
        self.error: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._canvases: list[Any] = []

        body = QWidget(self)
        layout = QVBoxLayout(body)
        top = QHBoxLayout()
        self.chooser = QComboBox(body)
        for tour in self.tours:
            self.chooser.addItem(tour.title, tour.name)
        self.start_button = QPushButton("Start", body)
        top.addWidget(self.chooser, 1)
        top.addWidget(self.start_button)
        layout.addLayout(top)
        self.position_label = QLabel("", body)
        layout.addWidget(self.position_label)
        self.text = QTextBrowser(body)
        self.text.setOpenExternalLinks(False)
        layout.addWidget(self.text, 1)
        buttons = QHBoxLayout()
        self.previous_button = QPushButton("◀ Previous", body)
        self.next_button = QPushButton("Next ▶", body)
        self.restart_button = QPushButton("Restart", body)
        for b in (self.previous_button, self.restart_button, self.next_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.setWidget(body)

        self.start_button.clicked.connect(self._on_start)
        self.next_button.clicked.connect(self._on_next)
        self.previous_button.clicked.connect(self._on_previous)
        self.restart_button.clicked.connect(self._on_restart)
        self._show_intro(self.current_tour())
        self._update_buttons()

    # -- public -------------------------------------------------------------------------
    def current_tour(self) -> Tour | None:
        name = self.chooser.currentData()
        return next((t for t in self.tours if t.name == name), None)

    def select_tour(self, name: str) -> None:
        index = self.chooser.findData(name)
        if index < 0:
            raise KeyError(f"no tour named '{name}'")
        self.chooser.setCurrentIndex(index)
        self._show_intro(self.current_tour())

    def attach_canvas(self, canvas: Any) -> None:
        """Show the tour's graph and highlights on ``canvas`` (see module docstring).

        The panel keeps ``canvas`` alive: Qt holds only weak references to the bound
        methods of plain Python objects.
        """
        self._canvases.append(canvas)
        self.snapshotChanged.connect(canvas.show_snapshot)
        self.highlightChanged.connect(canvas.set_highlight)

    def start(self) -> None:
        self._on_start()

    async def shutdown(self) -> None:
        """Close the tour's peer and scratch directory (call before the window goes)."""
        for task in list(self._tasks):
            task.cancel()
        if self.runner is not None:
            await self.runner.close()
            self.runner = None

    def abandon(self) -> None:
        """:meth:`shutdown` without awaiting, for when Qt's loop has ended by itself:
        the scratch directory still goes."""
        for task in list(self._tasks):
            task.cancel()
        if self.runner is not None:
            self.runner.abandon()
            self.runner = None

    # -- actions ------------------------------------------------------------------------
    def _spawn(self, coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self.busy:
            return
        self._set_busy(True)

        async def guarded() -> None:
            try:
                await coro()
                self.error = None
            except Exception as exc:  # shown in the panel, the tour can be restarted
                self.error = f"{type(exc).__name__}: {exc}"
                self.text.append(f"<p style='color:#b00020'><b>Error:</b> "
                                 f"{html.escape(self.error)}</p>")
            finally:
                self._set_busy(False)

        task = asyncio.get_event_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_start(self) -> None:
        tour = self.current_tour()
        if tour is None:
            return

        async def go() -> None:
            if self.runner is not None:
                await self.runner.close()
            self.runner = TourRunner(tour, self.peer_factory,
                                     on_snapshot=self.snapshotChanged.emit)
            await self.runner.start()
            self.highlightChanged.emit(())
            self._show_intro(tour)

        self._spawn(go)

    def _on_next(self) -> None:
        async def go() -> None:
            runner = self.runner
            if runner is None:
                return
            result = await runner.next()
            self._show_result(result)
            self.stepFinished.emit(result)
            if runner.finished:
                self.tourFinished.emit(all(r.ok for r in runner.results))

        self._spawn(go)

    def _on_previous(self) -> None:
        async def go() -> None:
            runner = self.runner
            if runner is None:
                return
            result = await runner.previous()
            if result is None:
                self.highlightChanged.emit(())
                self._show_intro(runner.tour)
            else:
                self._show_result(result)

        self._spawn(go)

    def _on_restart(self) -> None:
        async def go() -> None:
            runner = self.runner
            if runner is None:
                return
            await runner.restart()
            self.highlightChanged.emit(())
            self._show_intro(runner.tour)

        self._spawn(go)

    # -- display ------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()
        self.busyChanged.emit(busy)

    def _update_buttons(self) -> None:
        r = self.runner
        started = r is not None and r.peer is not None
        self.start_button.setEnabled(not self.busy)
        self.chooser.setEnabled(not self.busy)
        self.next_button.setEnabled(not self.busy and started and not r.finished)  # type: ignore[union-attr]
        self.previous_button.setEnabled(not self.busy and started and r.position > 0)  # type: ignore[union-attr]
        self.restart_button.setEnabled(not self.busy and started)
        if r is not None and started:
            self.position_label.setText(
                f"{r.tour.title} — step {r.position} of {len(r.tour.steps)}")
        else:
            self.position_label.setText("Choose a tour and press Start.")

    def _next_hint(self) -> str:
        r = self.runner
        if r is None or r.peer is None:
            return ""
        nxt = r.next_step
        if nxt is None:
            ok = all(x.ok for x in r.results)
            verdict = ("Every step went as the tour says." if ok
                       else "Some steps did not go as the tour says.")
            return f"<p><i>End of the tour. {verdict}</i></p>"
        return f"<p><i>Next: {html.escape(nxt.title)}</i></p>"

    def _show_intro(self, tour: Tour | None) -> None:
        if tour is None:
            self.text.setHtml("<p>No tours found.</p>")
            return
        parts = [f"<h3>{html.escape(tour.title)}</h3>", f"<p>{html.escape(tour.intro)}</p>"]
        r = self.runner
        if r is not None and r.directory is not None and r.tour is tour:
            files = "".join(f"<li>{html.escape(x)}</li>" for x in r.setup_lines)
            parts.append(f"<p>Scratch images in <code>$DIR = {html.escape(str(r.directory))}"
                         f"</code>:</p><ul>{files}</ul>")
        parts.append(self._next_hint())
        self.text.setHtml("".join(parts))
        self._update_buttons()

    def _short(self, text: str) -> str:
        """Show the scratch directory as $DIR (it is named once, in the introduction)."""
        d = self.runner.directory if self.runner else None
        return text.replace(str(d), "$DIR") if d else text

    def _show_result(self, result: StepResult) -> None:
        step = result.step
        total = len(self.runner.tour.steps) if self.runner else 0
        parts = [f"<h3>{result.index + 1}/{total}. {html.escape(step.title)}</h3>",
                 f"<p>{html.escape(step.explain)}</p>"]
        if result.sent is not None:
            pretty = self._short(json.dumps(result.sent, indent=1))
            shell = self._short(result.qmp_shell)
            parts.append(f"<p><b>QMP</b></p><pre style='white-space: pre-wrap'>"
                         f"{html.escape(pretty)}</pre>")
            parts.append(f"<p><b>qmp-shell</b></p><pre style='white-space: pre-wrap'>"
                         f"{html.escape(shell)}</pre>")
            if result.error is not None:
                colour = "#8a6d00" if not step.expect.ok else "#b00020"
                parts.append(f"<p style='color:{colour}'><b>Error</b> "
                             f"({html.escape(result.error_class or '')}): "
                             f"{html.escape(result.error)}</p>")
            else:
                parts.append(f"<p><b>Returned</b> "
                             f"<code>{html.escape(json.dumps(result.returned))}</code></p>")
            parts.append(f"<p>The tour says this command {html.escape(step.expect.describe())}."
                         f"</p>")
        if result.waited:
            parts.append(f"<p>Job reached <b>{html.escape(result.waited)}</b>.</p>")
        if result.ok:
            parts.append("<p style='color:#1b5e20'><b>✔ As the tour says.</b></p>")
        else:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in result.problems)
            parts.append(f"<p style='color:#b00020'><b>✘ Not as the tour says:</b></p>"
                         f"<ul>{items}</ul>")
        parts.append(self._next_hint())
        self.text.setHtml("".join(parts))
        self.highlightChanged.emit(tuple(step.highlight))
        self._update_buttons()


class SceneCanvas:
    """The editor's graph scene as a tour canvas: its projection and its node highlight.

    ``GraphScene.show_snapshot`` draws the tour's graph; highlighting sets the
    ``highlighted`` flag of the scene's node items (the halo the editor draws).
    """

    def __init__(self, scene: Any) -> None:
        self.scene = scene
        self.keys: tuple[str, ...] = ()

    def show_snapshot(self, snapshot: Any) -> None:
        self.scene.show_snapshot(snapshot)
        self._apply()

    def set_highlight(self, keys: Any) -> None:
        self.keys = tuple(keys)
        self._apply()

    def _apply(self) -> None:
        for key, item in self.scene.nodes.items():
            on = key in self.keys
            if item.highlighted != on:
                item.highlighted = on
                item.repaint()


def dock_tour_panel(window: Any, canvas: Any | None = None, *,
                    tour: str | None = None) -> TourPanel:
    """Create a tour panel docked on ``window`` (a QMainWindow), optionally on ``canvas``
    (a canvas object, or the editor's GraphScene, which is wrapped in SceneCanvas)."""
    panel = TourPanel(window)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, panel)
    if canvas is not None:
        if not hasattr(canvas, "set_highlight") and hasattr(canvas, "nodes"):
            canvas = SceneCanvas(canvas)
        panel.attach_canvas(canvas)
    if tour is not None:
        panel.select_tour(tour)
    return panel

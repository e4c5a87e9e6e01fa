"""A window for one tour: the tour panel beside the tour's graph, on the editor's scene.

The graph is drawn by the editor's :class:`~gui.views.scene.GraphScene` (the canvas
the editor uses for live graphs), with the step's nodes haloed through
:class:`~gui.tours.panel.SceneCanvas`; the view refits after every step.

``blockgraph tour NAME`` (without ``--headless``) opens it. Inside the editor the same
:class:`~gui.tours.panel.TourPanel` docks next to the editor's canvas instead
(:func:`gui.tours.panel.dock_tour_panel`).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QGraphicsView, QMainWindow, QWidget

from gui.lifecycle.display import exit_status_without_display
from gui.lifecycle.shutdown import end_without_teardown
from gui.lifecycle.signals import close_on_signals
from gui.tours.panel import SceneCanvas, TourPanel
from gui.tours.runner import PeerFactory
from gui.views.scene import GraphScene


class _FittingCanvas(SceneCanvas):
    """SceneCanvas that keeps the whole graph in view."""

    def __init__(self, scene: GraphScene, view: QGraphicsView) -> None:
        super().__init__(scene)
        self.view = view

    def show_snapshot(self, snapshot: Any) -> None:
        super().show_snapshot(snapshot)
        rect = self.scene.itemsBoundingRect().adjusted(-40, -40, 40, 40)
        self.scene.setSceneRect(rect)
        self.view.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.view.transform().m11() > 1.0:
            self.view.resetTransform()


class TourWindow(QMainWindow):
    def __init__(self, tour: str | None = None, *, peer_factory: PeerFactory | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("blockgraph — guided tour")
        self.scene = GraphScene()
        self.view = QGraphicsView(self.scene, self)
        self.view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setCentralWidget(self.view)
        self.panel = TourPanel(self, peer_factory=peer_factory)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
        self.panel.attach_canvas(_FittingCanvas(self.scene, self.view))
        if tour is not None:
            self.panel.select_tour(tour)
        self.resize(1280, 760)
        self.resizeDocks([self.panel], [520], Qt.Orientation.Horizontal)


def main(tour: str | None = None) -> int:
    """Run the tour window with an asyncio loop inside Qt's (qasync)."""
    if (status := exit_status_without_display("blockgraph tour")) is not None:
        return status
    app = cast(QApplication, QApplication.instance() or QApplication([]))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = TourWindow(tour)
    window.show()
    close_on_signals(window.close, window)
    window.panel.start()
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    quitting = False

    def qt_quitting() -> None:
        # Qt ends its loop by itself (the X server went away): nothing can be awaited
        # any more, so the tour's engine and scratch files go here, synchronously
        nonlocal quitting
        quitting = True
        window.panel.abandon()
        closed.set()

    app.aboutToQuit.connect(qt_quitting)
    with loop:
        try:
            loop.run_until_complete(closed.wait())
        except RuntimeError:
            if not quitting:
                raise
            # the loop stopped with Qt's before the wait saw the event: expected here
        if quitting:   # before the loop is closed: nothing of it is torn down
            end_without_teardown(0)
        loop.run_until_complete(window.panel.shutdown())
    return 0

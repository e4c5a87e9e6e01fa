"""A window for one tour: the tour panel beside a compact drawing of the tour's graph.

``blockgraph tour NAME`` (without ``--headless``) opens it. Inside the editor the same
:class:`~gui.widgets.tour_panel.TourPanel` docks next to the editor's canvas instead
(:func:`gui.widgets.tour_panel.dock_tour_panel`).
"""

from __future__ import annotations

import asyncio
import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

from gui.tours.runner import PeerFactory
from gui.widgets.compact_graph import CompactGraphView
from gui.widgets.tour_panel import TourPanel


class TourWindow(QMainWindow):
    def __init__(self, tour: str | None = None, *, peer_factory: PeerFactory | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("blockgraph — guided tour")
        self.view = CompactGraphView(self)
        self.setCentralWidget(self.view)
        self.panel = TourPanel(self, peer_factory=peer_factory)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
        self.panel.attach_canvas(self.view)
        if tour is not None:
            self.panel.select_tour(tour)
        self.resize(1280, 760)
        self.resizeDocks([self.panel], [520], Qt.Orientation.Horizontal)


def main(tour: str | None = None) -> int:
    """Run the tour window with an asyncio loop inside Qt's (qasync)."""
    os.environ.setdefault("QT_API", "pyside6")
    app = QApplication.instance() or QApplication([])
    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = TourWindow(tour)
    window.show()
    window.panel.start()
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
        loop.run_until_complete(window.panel.shutdown())
    return 0

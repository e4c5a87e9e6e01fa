"""Each VM's graph in its own labelled frame — or tab, as the user prefers.

In *frames* mode the shown VMs are laid out two to a row in a scroll area, each a
titled box (``vm1 — running, commit ready``) around a read-only drawing of its graph;
in *tabs* mode each VM is a tab. Hidden VMs are in neither. A frame redraws only when
its VM's graph is a different one.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.graph.snapshot import GraphSnapshot
from gui.widgets.compact_graph import CompactGraphView

FRAMES, TABS = "frames", "tabs"
COLUMNS = 2
FRAME_HEIGHT = 320


class FittedGraphView(CompactGraphView):
    """The compact drawing, scaled down to fit its frame (never up)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def show_snapshot(self, snapshot: GraphSnapshot) -> None:
        super().show_snapshot(snapshot)
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        rect = self.scene().itemsBoundingRect().adjusted(-12, -12, 12, 12)
        if rect.isEmpty():
            return
        self.resetTransform()
        view = self.viewport().rect()
        if rect.width() > view.width() or rect.height() > view.height():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.centerOn(rect.center())


class VmFrame(QGroupBox):
    """One VM: its name and status as the title, its graph inside."""

    def __init__(self, address: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.address = address
        self.name = name
        self.status = ""
        self.view = FittedGraphView(self)
        self.note = QLabel(self)
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.view)
        layout.addWidget(self.note)
        self.note.hide()
        self.setMinimumHeight(FRAME_HEIGHT)
        self.set_status("")

    @property
    def snapshot(self) -> GraphSnapshot | None:
        return self.view.snapshot

    def set_status(self, status: str) -> None:
        self.status = status
        self.setTitle(f"{self.name} — {status}" if status else self.name)

    def show_graph(self, snapshot: GraphSnapshot | None, note: str = "") -> None:
        """Draw ``snapshot`` (if it differs from the one drawn), or say why there is none."""
        if snapshot is None:
            self.view.hide()
            self.note.setText(note or "not running: libvirt's XML holds no live graph")
            self.note.show()
            return
        self.note.hide()
        self.view.show()
        if self.view.snapshot is not snapshot and self.view.snapshot != snapshot:
            self.view.show_snapshot(snapshot)


class VmFrames(QStackedWidget):
    """The VM frames in frames or tabs mode (see the module)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frames: dict[str, VmFrame] = {}
        self.hidden: set[str] = set()
        self.mode = FRAMES
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(self.grid_host)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.addWidget(self.scroll_area)
        self.addWidget(self.tabs)

    def frame(self, address: str, name: str) -> VmFrame:
        """VM ``address``'s frame (made, and placed, on first use)."""
        found = self.frames.get(address)
        if found is None:
            found = self.frames[address] = VmFrame(address, name)
            self._relayout()
        return found

    def remove(self, address: str) -> None:
        frame = self.frames.pop(address, None)
        self.hidden.discard(address)
        if frame is not None:
            self._relayout()
            frame.setParent(None)
            frame.deleteLater()

    def set_visible(self, address: str, shown: bool) -> None:
        if shown:
            self.hidden.discard(address)
        else:
            self.hidden.add(address)
        self._relayout()

    def shown(self) -> list[VmFrame]:
        return [f for a, f in self.frames.items() if a not in self.hidden]

    def set_mode(self, mode: str) -> None:
        if mode not in (FRAMES, TABS):
            raise ValueError(mode)
        self.mode = mode
        self._relayout()

    def focus(self, address: str) -> None:
        """Bring VM ``address`` into view (showing it if it was hidden)."""
        frame = self.frames.get(address)
        if frame is None:
            return
        if address in self.hidden:
            self.set_visible(address, True)
        if self.mode == TABS:
            self.tabs.setCurrentWidget(frame)
        else:
            self.scroll_area.ensureWidgetVisible(frame)
        frame.view.setFocus()

    def _relayout(self) -> None:
        """Put the shown frames in the grid or the tabs, in the order they came."""
        while self.grid.count():
            self.grid.takeAt(0)
        self.tabs.clear()
        for frame in self.frames.values():
            frame.setParent(None)
        shown = self.shown()
        if self.mode == TABS:
            for frame in shown:
                self.tabs.addTab(frame, frame.name)
                frame.show()
            self.setCurrentWidget(self.tabs)
        else:
            for i, frame in enumerate(shown):
                self.grid.addWidget(frame, i // COLUMNS, i % COLUMNS)
                frame.show()
            self.setCurrentWidget(self.scroll_area)

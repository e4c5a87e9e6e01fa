"""Find a node by name: the toolbar's search box, with completion and Enter for the next match."""

from __future__ import annotations

from PySide6.QtCore import QObject, QStringListModel, Qt, Signal
from PySide6.QtWidgets import QCompleter, QLineEdit

from engine.graph.snapshot import GraphSnapshot
from gui.views.canvas import GraphCanvas
from gui.views.scene import GraphScene


class NodeSearch(QObject):
    """The search box (:attr:`box`) and what it does to the canvas."""

    message = Signal(str)
    error = Signal(str)

    def __init__(self, scene: GraphScene, view: GraphCanvas, parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self.scene = scene
        self.view = view
        self._index = 0
        self._text = ""
        self.box = QLineEdit()
        self.box.setPlaceholderText("Find node (Ctrl+F)")
        self.box.setClearButtonEnabled(True)
        self.box.setMaximumWidth(240)
        self.box.setToolTip("Type part of a node name; Enter jumps to the next match")
        self.names = QStringListModel()
        completer = QCompleter(self.names, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.box.setCompleter(completer)
        completer.activated.connect(lambda text: self.find(text))
        self.box.returnPressed.connect(lambda: self.find(self.box.text()))

    def focus(self) -> None:
        self.box.setFocus()
        self.box.selectAll()

    def set_graph(self, snapshot: GraphSnapshot) -> None:
        """Offer the names of ``snapshot``'s nodes for completion."""
        self.names.setStringList(sorted(snapshot.nodes))

    def find(self, text: str) -> str | None:
        """Select and centre the next node whose key contains ``text``."""
        text = text.strip().lower()
        snap = self.scene.snapshot
        if not text or snap is None:
            return None
        matches = [k for k in snap.nodes if text in k.lower()]
        exact = [k for k in matches if k.lower() == text]
        if not matches:
            self.error.emit(f"no node matches '{text}'")
            return None
        if exact:
            key = exact[0]
        else:
            if text != self._text:
                self._text, self._index = text, 0
            else:  # Enter again: the next match
                self._index = (self._index + 1) % len(matches)
            key = matches[self._index]
        self.view.center_on_node(key)
        self.view.setFocus()
        self.message.emit(f"{key} ({len(matches)} match{'es' if len(matches) > 1 else ''})")
        return key

"""Find a node by name or by file: the toolbar's search box, with completion and Enter for
the next match.

Nodes QEMU named itself (``#block123``, opened from an image header) are found by their
image's file name: typing ``vm1-mid.qcow2`` (or part of its path) finds the format node
that reads it first, then its protocol node.
"""

from __future__ import annotations

import json
import os

from PySide6.QtCore import QObject, QStringListModel, Qt, Signal
from PySide6.QtWidgets import QCompleter, QLineEdit

from engine.graph.snapshot import GraphSnapshot, NodeInfo
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
        self.box.setPlaceholderText("Find node or file (Ctrl+F)")
        self.box.setClearButtonEnabled(True)
        self.box.setMaximumWidth(240)
        self.box.setToolTip("Type part of a node name or of an image's file name; Enter "
                            "jumps to the next match")
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
        """Offer the names of ``snapshot``'s nodes and their files for completion."""
        files = {os.path.basename(f) for n in snapshot.nodes.values()
                 if (f := _plain_file(n))}
        self.names.setStringList(sorted(set(snapshot.nodes) | files))

    def find(self, text: str) -> str | None:
        """Select and centre the next node whose key contains ``text``."""
        text = text.strip().lower()
        snap = self.scene.snapshot
        if not text or snap is None:
            return None
        by_name = [k for k in snap.nodes if text in k.lower()]
        by_file = [k for k, n in snap.nodes.items()
                   if k not in by_name and text in _plain_file(n).lower()]
        # format nodes before the protocol nodes under them (they share the file name)
        by_file.sort(key=lambda k: snap.children(k) == [])
        matches = by_name + by_file
        exact = [k for k in by_name if k.lower() == text] or [
            k for k in by_file if os.path.basename(_plain_file(snap.nodes[k])).lower() == text]
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


def _plain_file(node: NodeInfo) -> str:
    """The node's image file (the innermost file name of a ``json:`` one), or ""."""
    name = node.filename
    if not name.startswith("json:"):
        return name
    try:
        opts = json.loads(name[len("json:"):])
    except ValueError:
        return ""
    while isinstance(opts, dict):
        if isinstance(opts.get("filename"), str):
            return str(opts["filename"])
        opts = opts.get("file")
    return ""

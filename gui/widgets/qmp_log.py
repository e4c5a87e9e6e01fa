"""QMP log dock: every command, reply and event, pretty-printed and filterable.

Background refresh queries are hidden unless asked for (they would drown the
user's own commands). Errors are highlighted. The selection copies as JSON or as
qmp-shell lines.
"""

from __future__ import annotations

import json
import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.scripting.qmp_shell import format_line
from gui.session import TrafficEntry


def qmp_shell_line(message: dict) -> str:
    """A sent command as qmp-shell reads it (:func:`gui.scripting.qmp_shell.format_line`)."""
    return format_line(str(message.get("execute", "")), message.get("arguments"))


class QmpLog(QWidget):
    def __init__(self, parent: QWidget | None = None, limit: int = 5000) -> None:
        super().__init__(parent)
        self.limit = limit
        self.filter = QLineEdit(placeholderText="Filter (command, event or text)…")
        self.filter.setClearButtonEnabled(True)
        self.show_background = QCheckBox("Show refresh queries")
        self.show_background.setToolTip("Show the editor's own periodic graph queries")
        self.copy_json = QPushButton("Copy JSON")
        self.copy_shell = QPushButton("Copy as qmp-shell")
        self.clear_button = QPushButton("Clear")
        top = QHBoxLayout()
        for w in (self.filter, self.show_background, self.copy_json, self.copy_shell,
                  self.clear_button):
            top.addWidget(w)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["time", "", "kind", "message"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.tree.setColumnWidth(0, 90)
        self.tree.setColumnWidth(1, 24)
        self.tree.setColumnWidth(2, 70)
        self.detail = QPlainTextEdit(readOnly=True)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tree)
        split.addWidget(self.detail)
        split.setSizes([200, 100])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(split)
        self.entries: list[TrafficEntry] = []
        self.filter.textChanged.connect(self._apply_filter)
        self.show_background.toggled.connect(self._apply_filter)
        self.tree.currentItemChanged.connect(self._show_detail)
        self.copy_json.clicked.connect(lambda: self._copy(as_shell=False))
        self.copy_shell.clicked.connect(lambda: self._copy(as_shell=True))
        self.clear_button.clicked.connect(self.clear)

    def add(self, entry: TrafficEntry) -> None:
        self.entries.append(entry)
        item = QTreeWidgetItem([time.strftime("%H:%M:%S", time.localtime(entry.time))
                                + f".{int(entry.time * 1000) % 1000:03d}",
                                "→" if entry.direction == "sent" else "←", entry.kind,
                                entry.json[:300]])
        item.setData(0, Qt.ItemDataRole.UserRole, entry)
        if entry.kind == "error":
            for col in range(4):
                item.setForeground(col, QBrush(QColor("#d03b3b")))
        elif entry.kind == "event":
            item.setForeground(3, QBrush(QColor("#c9761a")))
        self.tree.addTopLevelItem(item)
        item.setHidden(not self._visible(entry))
        while self.tree.topLevelItemCount() > self.limit:
            self.tree.takeTopLevelItem(0)
            self.entries.pop(0)
        if not item.isHidden():
            self.tree.scrollToItem(item)

    def _visible(self, entry: TrafficEntry) -> bool:
        if entry.background and not self.show_background.isChecked():
            return False
        text = self.filter.text().strip().lower()
        return not text or text in entry.json.lower()

    def _rows(self) -> list[QTreeWidgetItem]:
        """The log's rows, top to bottom."""
        rows = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [row for row in rows if row is not None]

    def _apply_filter(self) -> None:
        for item in self._rows():
            item.setHidden(not self._visible(item.data(0, Qt.ItemDataRole.UserRole)))

    def _show_detail(self, item: QTreeWidgetItem | None) -> None:
        if item is None:
            self.detail.clear()
            return
        entry: TrafficEntry = item.data(0, Qt.ItemDataRole.UserRole)
        self.detail.setPlainText(json.dumps(dict(entry.message), indent=2, default=str))

    def selected_entries(self) -> list[TrafficEntry]:
        items = self.tree.selectedItems() or [
            row for row in self._rows() if not row.isHidden()]
        return [i.data(0, Qt.ItemDataRole.UserRole) for i in items]

    def selection_text(self, as_shell: bool) -> str:
        entries = self.selected_entries()
        if as_shell:
            return "\n".join(qmp_shell_line(dict(e.message)) for e in entries
                             if e.direction == "sent" and e.kind == "command")
        return "\n".join(json.dumps(dict(e.message), default=str) for e in entries)

    def _copy(self, as_shell: bool) -> None:
        QGuiApplication.clipboard().setText(self.selection_text(as_shell))

    def visible_count(self) -> int:
        return sum(not row.isHidden() for row in self._rows())

    def clear(self) -> None:
        self.tree.clear()
        self.entries.clear()
        self.detail.clear()

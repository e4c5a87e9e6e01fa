"""The Staged edits dock: the pending list, each item removable, and Apply.

It shows what the window's staging controller (:mod:`gui.window.staging`) holds and
asks it to remove an item, discard the list or apply it; an item the last Apply found
refused is shown in red with the reason.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class StagingPanel(QWidget):
    removeRequested = Signal(int)
    applyRequested = Signal()
    discardRequested = Signal()
    modeToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = QCheckBox("Stage edits instead of running them (Ctrl+B; or hold Shift "
                              "while dropping a link)")
        self.mode.toggled.connect(self.modeToggled)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.hint = QLabel("Nothing staged. Link changes, read-only toggles and snapshots "
                           "made while staging wait here and are applied together.")
        self.hint.setWordWrap(True)
        self.apply_button = QPushButton("Review and apply…")
        self.apply_button.setToolTip("One preview of every staged edit, sent as one atomic "
                                     "blockdev-reopen (or one transaction of snapshots)")
        self.discard_button = QPushButton("Discard all")
        self.apply_button.clicked.connect(self.applyRequested)
        self.discard_button.clicked.connect(self.discardRequested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.mode)
        layout.addWidget(self.hint)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.show_items([])

    def show_items(self, lines: list[str], refused: int = -1, reason: str = "") -> None:
        self.list.clear()
        for n, line in enumerate(lines):
            item = QListWidgetItem()
            self.list.addItem(item)
            row = QWidget()
            lay = QHBoxLayout(row)
            lay.setContentsMargins(4, 0, 4, 0)
            text = QLabel(f"#{n + 1}  {line}")
            text.setWordWrap(False)
            lay.addWidget(text, 1)
            remove = QToolButton()
            remove.setText("✕")
            remove.setToolTip("Remove this staged edit")
            remove.clicked.connect(lambda _=False, i=n: self.removeRequested.emit(i))
            lay.addWidget(remove)
            if n == refused:
                text.setStyleSheet("color: #c62828; font-weight: bold;")
                text.setToolTip(f"refused: {reason}")
                item.setBackground(QBrush(QColor("#fde7e7")))
            item.setSizeHint(row.sizeHint())
            self.list.setItemWidget(item, row)
        self.hint.setVisible(not lines)
        self.apply_button.setEnabled(bool(lines))
        self.discard_button.setEnabled(bool(lines))

    def remove_button(self, index: int) -> QToolButton:
        """The ✕ of item ``index`` (for tests and keyboard users)."""
        row = self.list.itemWidget(self.list.item(index))
        button = row.findChild(QToolButton)
        assert button is not None
        return button

    def set_mode(self, on: bool) -> None:
        if self.mode.isChecked() != on:
            self.mode.blockSignals(True)
            self.mode.setChecked(on)
            self.mode.blockSignals(False)

    def item_text(self, index: int) -> str:
        row = self.list.itemWidget(self.list.item(index))
        label = row.findChild(QLabel)
        return label.text() if label is not None else ""

    def count(self) -> int:
        return self.list.count()


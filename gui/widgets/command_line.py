"""File → Open QEMU command line…: paste the line ``ps`` shows or libvirt logged.

The dialog takes the whole text as pasted (quotes, ``\\`` line continuations,
libvirt's ``LC_ALL=C PATH=...`` prefix are all fine) or loads it from a file, such as
``/var/log/libvirt/qemu/DOMAIN.log``, whose last command line is taken.
"""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


def last_command_line(text: str) -> str:
    """The last QEMU command line in a libvirt domain log (the whole text otherwise).

    libvirt writes a timestamped header line, then the command line with one option
    per line joined by ``\\``; the line runs from the first line of that block to the
    first line that does not end in a continuation.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.endswith("\\") and (i == 0 or not lines[i - 1].endswith("\\"))]
    if not starts:
        return text.strip()
    block = []
    for line in lines[starts[-1]:]:
        block.append(line)
        if not line.endswith("\\"):
            break
    return "\n".join(block)


class CommandLineDialog(QDialog):
    """A text box for a QEMU command line, with Load file…."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open QEMU command line")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Paste a QEMU command line (as ps shows it, or from a "
                                "libvirt domain log). The bundled engine builds its block "
                                "graph; options blockgraph does not model are named."))
        self.text = QPlainTextEdit()
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setPlaceholderText("qemu-system-x86_64 -blockdev ... -device ...")
        self.text.setMinimumSize(560, 240)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open
                                   | QDialogButtonBox.StandardButton.Cancel)
        load = QPushButton("Load file…")
        load.setToolTip("Read the command line from a file (a libvirt log: its last one)")
        load.clicked.connect(self._load)
        buttons.addButton(load, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a QEMU command line")
        if path:
            with open(path, encoding="utf-8", errors="replace") as f:
                self.text.setPlainText(last_command_line(f.read()))

    def command_line(self) -> str:
        return self.text.toPlainText().strip()

    @classmethod
    def ask(cls, parent: QWidget | None = None) -> str | None:
        """Show the dialog; the text, or None when cancelled or empty."""
        dialog = cls(parent)
        if dialog.exec() and dialog.command_line():
            return dialog.command_line()
        return None

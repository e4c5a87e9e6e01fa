"""Insert or change a drive's medium: which image, its format, how read-only.

The file chooser shows CD/DVD and floppy images (ISO, raw) and disk images; the format
is read from the file's header when it is chosen (an ISO is raw), and can be changed.
The read-only mode is ``blockdev-change-medium``'s: *retain* keeps what the drive had,
*read-only* and *read-write* force it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.images.opening import probe_format

#: the file chooser's filters for a drive's medium
MEDIA_FILTER = ("CD/DVD and floppy images (*.iso *.img *.raw *.qcow2);;ISO images (*.iso);;"
                "Raw images (*.img *.raw);;All files (*)")
READ_ONLY_MODES = ("retain", "read-only", "read-write")
FORMATS = ("raw", "qcow2")


@dataclass(frozen=True, slots=True)
class MediumChoice:
    filename: str
    format: str = "raw"
    read_only_mode: str = "retain"


class MediumDialog(QDialog):
    """Choose the image to insert into a drive (see the module docstring)."""

    def __init__(self, drive: str, current: str | None, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{'Change' if current else 'Insert'} the medium of {drive}")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Now in {drive}: {current or 'nothing'}"))
        form = QFormLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("an ISO, raw or qcow2 image")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form.addRow("Image:", row)
        self.format = QComboBox()
        self.format.addItems(FORMATS)
        form.addRow("Format:", self.format)
        self.mode = QComboBox()
        self.mode.addItems(READ_ONLY_MODES)
        self.mode.setToolTip("retain: as the drive had it; read-only / read-write: forced")
        form.addRow("Read-only mode:", self.mode)
        layout.addLayout(form)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #c62828;")
        layout.addWidget(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.path.editingFinished.connect(lambda: self.set_path(self.path.text()))
        self.start = os.path.dirname(current) if current else ""

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a medium", self.start, MEDIA_FILTER)
        if path:
            self.set_path(path)

    def set_path(self, path: str) -> None:
        """Take ``path`` and read its format from its header."""
        self.path.setText(path)
        self.problem.setText("")
        if not path:
            return
        try:
            fmt = probe_format(path)
        except Exception as exc:  # ImageError, OSError: say what is wrong with the file
            self.problem.setText(str(exc))
            return
        if fmt in FORMATS:
            self.format.setCurrentText(fmt)

    def choice(self) -> MediumChoice | None:
        path = self.path.text().strip()
        if not path:
            return None
        return MediumChoice(os.path.abspath(path), self.format.currentText(),
                            self.mode.currentText())

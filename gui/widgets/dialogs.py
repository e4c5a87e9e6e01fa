"""Dialogs: connect, job options, and the :class:`Prompter` every question goes through.

All questions the editor asks (confirmations, an edit's review, names, choices, file
names) go through one :class:`Prompter`, so tests (and scripted tours) can answer them
without modal dialogs; :class:`DialogPrompter` is the interactive one. The review of an
edit is :mod:`gui.widgets.plan_review`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gui.widgets.media_dialog import MediumChoice, MediumDialog
from gui.widgets.modal import nested_event_loop
from gui.widgets.plan_review import PlanReviewDialog, Review

#: the file chooser's filter for disk images
IMAGE_FILTER = "Disk images (*.qcow2 *.img *.raw);;All files (*)"


@dataclass(frozen=True, slots=True)
class JobChoice:
    """A job dialog's answer: the option chosen and the speed limit (bytes/s; 0: none)."""

    choice: str
    speed: int = 0


class Prompter:
    """Interface: how the editor asks the user things (answers None = cancelled)."""

    def confirm(self, title: str, text: str) -> bool:
        raise NotImplementedError

    def review(self, review: Review) -> bool:
        """Show an edit's review; True to run it. Asked even with previews off when
        ``review.needs_confirmation``."""
        raise NotImplementedError

    def ask_text(self, title: str, label: str, default: str) -> str | None:
        raise NotImplementedError

    def choose(self, title: str, label: str, options: list[str], default: int = 0
               ) -> str | None:
        raise NotImplementedError

    def choose_job(self, title: str, label: str, options: list[str], default: int = 0
                   ) -> JobChoice | None:
        """Choose among ``options`` and give a speed limit (stream, commit)."""
        raise NotImplementedError

    def open_file(self, title: str, directory: str = "", filters: str = IMAGE_FILTER
                  ) -> str | None:
        raise NotImplementedError

    def save_file(self, title: str, suggested: str, filters: str) -> str | None:
        raise NotImplementedError

    def ask_medium(self, drive: str, current: str | None) -> MediumChoice | None:
        """The image to insert into ``drive`` (now holding ``current``), its format and
        read-only mode."""
        raise NotImplementedError

    def error(self, title: str, text: str) -> None:
        raise NotImplementedError


class DialogPrompter(Prompter):
    """Modal Qt dialogs; ``preview_enabled`` is the "Preview plans" setting."""

    def __init__(self, parent: QWidget, preview_enabled: bool = True) -> None:
        self.parent = parent
        self.preview_enabled = preview_enabled
        self.on_preview_disabled = lambda: None

    def confirm(self, title: str, text: str) -> bool:
        with nested_event_loop():
            answer = QMessageBox.question(self.parent, title, text,
                                          QMessageBox.StandardButton.Yes
                                          | QMessageBox.StandardButton.Cancel,
                                          QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def review(self, review: Review) -> bool:
        if not self.preview_enabled and not review.needs_confirmation:
            return True
        dialog = PlanReviewDialog(review, self.parent, offer_skip=self.preview_enabled)
        with nested_event_loop():
            ok = dialog.exec() == QDialog.DialogCode.Accepted
        if ok and dialog.skip.isChecked():
            self.preview_enabled = False
            self.on_preview_disabled()
        return ok

    def ask_text(self, title: str, label: str, default: str) -> str | None:
        with nested_event_loop():
            text, ok = QInputDialog.getText(self.parent, title, label, text=default)
        return text if ok and text else None

    def choose(self, title: str, label: str, options: list[str], default: int = 0
               ) -> str | None:
        answer = self._choose(title, label, options, default, speed=False)
        return answer.choice if answer is not None else None

    def choose_job(self, title: str, label: str, options: list[str], default: int = 0
                   ) -> JobChoice | None:
        return self._choose(title, label, options, default, speed=True)

    def _choose(self, title: str, label: str, options: list[str], default: int,
                speed: bool) -> JobChoice | None:
        if not options:
            return None
        dialog = QDialog(self.parent)
        dialog.setWindowTitle(title)
        layout = QVBoxLayout(dialog)
        layout.addWidget(QLabel(label))
        combo = QComboBox()
        combo.addItems(options)
        combo.setCurrentIndex(default)
        layout.addWidget(combo)
        limit = SpeedLimit()
        if speed:
            layout.addWidget(limit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        layout.addWidget(buttons)
        with nested_event_loop():
            accepted = dialog.exec() == QDialog.DialogCode.Accepted
        return JobChoice(combo.currentText(), limit.speed()) if accepted else None

    def open_file(self, title: str, directory: str = "", filters: str = IMAGE_FILTER
                  ) -> str | None:
        with nested_event_loop():
            path, _ = QFileDialog.getOpenFileName(self.parent, title, directory, filters)
        return path or None

    def save_file(self, title: str, suggested: str, filters: str) -> str | None:
        with nested_event_loop():
            path, _ = QFileDialog.getSaveFileName(self.parent, title, suggested, filters)
        return path or None

    def ask_medium(self, drive: str, current: str | None) -> MediumChoice | None:
        dialog = MediumDialog(drive, current, self.parent)
        with nested_event_loop():
            accepted = dialog.exec() == QDialog.DialogCode.Accepted
        return dialog.choice() if accepted else None

    def error(self, title: str, text: str) -> None:
        with nested_event_loop():
            QMessageBox.warning(self.parent, title, text)


class SpeedLimit(QWidget):
    """A job's speed limit: off, or so many MiB/s (QMP ``speed``, in bytes per second).

    A limited job runs long enough to be paused, resumed or cancelled from the jobs dock.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Limit the speed to")
        self.mib = QSpinBox()
        self.mib.setRange(1, 100_000)
        self.mib.setValue(10)
        self.mib.setSuffix(" MiB/s")
        self.mib.setEnabled(False)
        self.enabled.toggled.connect(self.mib.setEnabled)
        self.enabled.setToolTip("Start the job with a speed limit (it can be changed later: "
                                "block-job-set-speed)")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.enabled, self.mib)

    def speed(self) -> int:
        """Bytes per second, 0 for no limit."""
        return self.mib.value() << 20 if self.enabled.isChecked() else 0


class ConnectDialog(QDialog):
    """Ask for a QMP address; recent addresses are offered first."""

    def __init__(self, recent: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to QEMU")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("QMP address of a QEMU or qemu-storage-daemon monitor:\n"
                                "unix:/path/to/qmp.sock  or  tcp:HOST:PORT"))
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.addItems(recent)
        self.combo.setMinimumWidth(380)
        layout.addWidget(self.combo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def address(self) -> str:
        return self.combo.currentText().strip()

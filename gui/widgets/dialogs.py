"""Dialogs: plan preview, connect, and the :class:`Prompter` every question goes through.

All questions the editor asks (confirmations, names, choices, file names) go
through one :class:`Prompter`, so tests (and scripted tours) can answer them
without modal dialogs; :class:`DialogPrompter` is the interactive one.
"""

from __future__ import annotations

import json

from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.planner.plan import Plan
from gui.widgets.modal import nested_event_loop


def plan_json(plan: Plan) -> str:
    """The commands a plan sends, pretty-printed (waits shown as comments)."""
    out = []
    for step in plan.steps:
        if hasattr(step, "message"):
            out.append(json.dumps(step.message(), indent=2))
        else:
            out.append(step.qmp_shell())
    return "\n".join(out)


class PlanPreviewDialog(QDialog):
    """Shows exactly what a plan will send before it is sent."""

    def __init__(self, plan: Plan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preview: " + plan.summary)
        self.plan = plan
        layout = QVBoxLayout(self)
        summary = QLabel(f"<b>{plan.summary}</b>")
        summary.setWordWrap(True)
        layout.addWidget(summary)
        if plan.irreversible:
            warn = QLabel(f"⚠ This cannot be undone: {plan.irreversible}")
            warn.setStyleSheet("color: #c62828;")
            warn.setWordWrap(True)
            layout.addWidget(warn)
        elif plan.inverse is not None:
            layout.addWidget(QLabel("Can be undone (Ctrl+Z)."))
        for warning in plan.warnings:
            note = QLabel(f"⚠ {warning}")
            note.setStyleSheet("color: #a05a00;")
            note.setWordWrap(True)
            layout.addWidget(note)
        text = QPlainTextEdit(readOnly=True)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        text.setFont(mono)
        text.setPlainText(plan_json(plan))
        text.setMinimumSize(560, 280)
        layout.addWidget(text)
        self.skip = QCheckBox("Don't preview plans again (Edit → Preview plans)")
        layout.addWidget(self.skip)
        buttons = QDialogButtonBox()
        self.run_button = buttons.addButton("Execute", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        copy_json = QPushButton("Copy JSON")
        copy_shell = QPushButton("Copy qmp-shell")
        buttons.addButton(copy_json, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(copy_shell, QDialogButtonBox.ButtonRole.ActionRole)
        copy_json.clicked.connect(lambda: QGuiApplication.clipboard().setText(plan.as_json()))
        copy_shell.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(plan.as_qmp_shell()))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class Prompter:
    """Interface: how the editor asks the user things (answers None = cancelled)."""

    def confirm(self, title: str, text: str) -> bool:
        raise NotImplementedError

    def preview(self, plan: Plan) -> bool:
        raise NotImplementedError

    def ask_text(self, title: str, label: str, default: str) -> str | None:
        raise NotImplementedError

    def choose(self, title: str, label: str, options: list[str], default: int = 0
               ) -> str | None:
        raise NotImplementedError

    def open_file(self, title: str, directory: str = "") -> str | None:
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

    def preview(self, plan: Plan) -> bool:
        if not self.preview_enabled:
            return True
        dialog = PlanPreviewDialog(plan, self.parent)
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
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        layout.addWidget(buttons)
        with nested_event_loop():
            accepted = dialog.exec() == QDialog.DialogCode.Accepted
        return combo.currentText() if accepted else None

    def open_file(self, title: str, directory: str = "") -> str | None:
        with nested_event_loop():
            path, _ = QFileDialog.getOpenFileName(
                self.parent, title, directory, "Disk images (*.qcow2 *.img *.raw);;All files (*)")
        return path or None

    def error(self, title: str, text: str) -> None:
        with nested_event_loop():
            QMessageBox.warning(self.parent, title, text)


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

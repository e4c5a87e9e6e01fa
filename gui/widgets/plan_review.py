"""The one dialog before an edit runs: what it sends, what it changes, whether it can be undone.

A :class:`Review` gathers everything the user is asked to agree to — the plan's QMP, its
consequences for each VM disk, export and chain (:mod:`gui.planner.consequences`), the
planner's warnings, why it cannot be undone — so an edit costs one dialog, never two or
three in a row. When previews are off (Edit → Preview plans) the dialog still comes
for what must be confirmed: an attached disk that would read different data, an edit
that cannot be undone, a warning, or a destructive edit.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.planner.consequences import Consequences
from gui.planner.plan import Plan


@dataclass(frozen=True)
class Review:
    """What one edit asks the user to agree to (see the module docstring)."""

    plan: Plan
    consequences: Consequences | None = None
    #: why it cannot be undone (None: it can)
    irreversible: str | None = None
    warnings: tuple[str, ...] = ()
    #: the headline: attached disks or exports whose data would change under them
    danger: tuple[str, ...] = ()
    #: destructive (a delete, a detach): asked even with previews off
    destructive: bool = False
    #: the button that runs it
    action: str = "Execute"

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.irreversible or self.warnings or self.danger or self.destructive)

    def consequence_lines(self) -> list[str]:
        return self.consequences.lines() if self.consequences is not None else []

    def text(self) -> str:
        """The review as plain text (what a confirmation without the dialog shows)."""
        parts = [self.plan.summary]
        parts += [f"⚠ {d}" for d in self.danger]
        if self.irreversible:
            parts.append(f"This cannot be undone: {self.irreversible}.")
        parts += [f"⚠ {w}" for w in self.warnings]
        lines = self.consequence_lines()
        if lines:
            parts.append("\n".join(lines))
        return "\n\n".join(parts)


def _plain(text: str) -> QLabel:
    """A label that shows ``text`` as it is (no markup read into it)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def plan_text(plan: Plan) -> str:
    """The commands a plan sends, pretty-printed (waits shown as comments)."""
    out = []
    for step in plan.steps:
        if hasattr(step, "message"):
            out.append(json.dumps(step.message(), indent=2))
        else:
            out.append(step.qmp_shell())
    return "\n".join(out)


class PlanReviewDialog(QDialog):
    """The review of one edit; Execute (or the review's action) runs it."""

    def __init__(self, review: Review, parent: QWidget | None = None,
                 offer_skip: bool = True) -> None:
        # Over 60 lines: the dialog's rows built top to bottom as they appear, one widget after
        # another.
        super().__init__(parent)
        plan = review.plan
        self.setWindowTitle(("Confirm: " if review.needs_confirmation else "Preview: ")
                            + plan.summary)
        self.review = review
        layout = QVBoxLayout(self)
        summary = QLabel(f"<b>{html.escape(plan.summary)}</b>")
        summary.setTextFormat(Qt.TextFormat.RichText)
        summary.setWordWrap(True)
        layout.addWidget(summary)
        for text in review.danger:
            danger = _plain(f"⚠ {text}")
            danger.setObjectName("danger")
            danger.setWordWrap(True)
            danger.setStyleSheet("#danger { background: #c62828; color: white; "
                                 "font-weight: bold; padding: 6px; border-radius: 4px; }")
            layout.addWidget(danger)
        if review.irreversible:
            warn = _plain(f"⚠ This cannot be undone: {review.irreversible}.")
            warn.setStyleSheet("color: #c62828;")
            warn.setWordWrap(True)
            layout.addWidget(warn)
        elif plan.inverse is not None:
            layout.addWidget(QLabel("Can be undone (Ctrl+Z)."))
        for warning in review.warnings:
            note = _plain(f"⚠ {warning}")
            note.setStyleSheet("color: #a05a00;")
            note.setWordWrap(True)
            layout.addWidget(note)
        lines = review.consequence_lines()
        if lines:
            layout.addWidget(QLabel("<b>What changes</b>"))
            self.consequences = QLabel("<br>".join(
                ("&nbsp;&nbsp;&nbsp;&nbsp;" + html.escape(line.strip())) if line.startswith(" ")
                else html.escape(line) for line in lines))
            self.consequences.setTextFormat(Qt.TextFormat.RichText)
            self.consequences.setWordWrap(True)
            self.consequences.setObjectName("consequences")
            layout.addWidget(self.consequences)
        layout.addWidget(QLabel("<b>QMP it sends</b>"))
        qmp_text = QPlainTextEdit(readOnly=True)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        qmp_text.setFont(mono)
        qmp_text.setPlainText(plan_text(plan))
        qmp_text.setMinimumSize(560, 200)
        layout.addWidget(qmp_text)
        self.skip = QCheckBox("Don't preview plans again (Edit → Preview plans)")
        self.skip.setVisible(offer_skip)
        layout.addWidget(self.skip)
        buttons = QDialogButtonBox()
        self.run_button = buttons.addButton(review.action,
                                            QDialogButtonBox.ButtonRole.AcceptRole)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        if review.danger or review.destructive:
            cancel.setDefault(True)        # Enter must not run a dangerous edit
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

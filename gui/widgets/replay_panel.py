"""The Replay dock: a script's steps, each shown as it runs, divergences marked.

One row per step of a QMP script (:mod:`gui.scripting.script`): the command in
qmp-shell syntax (or the wait), then its outcome. The step that runs is bold; a step
that went as recorded gets a green ✓, one that did not a red ✗ with what differed
(an error where the recording succeeded, another error text, …) in its tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.scripting.replay import StepReport
from gui.scripting.script import Script, ScriptCommand, Step

OK, DIVERGED, RUNNING, PENDING, SKIPPED = "ok", "diverged", "running", "pending", "skipped"


def step_text(step: Step) -> str:
    if isinstance(step, ScriptCommand):
        return step.qmp_shell()
    return f"wait for job {step.job} to become {'/'.join(step.until)}"


class ReplayPanel(QWidget):
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("No script replayed yet (File → Replay script…).")
        self.title.setWordWrap(True)
        self.keep_going = QCheckBox("Go on after a step that does not go as recorded")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stopRequested)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["", "#", "step", "outcome"])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 28)
        self.tree.setColumnWidth(1, 40)
        self.tree.setColumnWidth(2, 460)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.keep_going)
        layout.addWidget(self.tree)
        self.states: list[str] = []

    def load(self, script: Script, where: str) -> None:
        self.tree.clear()
        self.states = [PENDING] * len(script.steps)
        for n, step in enumerate(script.steps, 1):
            item = QTreeWidgetItem(["", str(n), step_text(step), ""])
            item.setForeground(2, QBrush(QColor("#7a8291")))
            self.tree.addTopLevelItem(item)
        self.title.setText(f"Replaying {len(script.steps)} steps of {script.source} on {where}")
        self.stop_button.setEnabled(True)

    def mark_running(self, index: int) -> None:
        item = self.tree.topLevelItem(index)
        if item is None:
            return
        self.states[index] = RUNNING
        bold = QFont(item.font(2))
        bold.setBold(True)
        item.setFont(2, bold)
        item.setForeground(2, QBrush(self.palette().text().color()))
        item.setText(3, "running…")
        self.tree.scrollToItem(item)

    def mark_done(self, index: int, report: StepReport) -> None:
        item = self.tree.topLevelItem(index)
        if item is None:
            return
        self.states[index] = OK if report.ok else DIVERGED
        plain = QFont(item.font(2))
        plain.setBold(False)
        item.setFont(2, plain)
        item.setForeground(2, QBrush(self.palette().text().color()))
        item.setText(0, "✓" if report.ok else "✗")
        color = QColor("#1f9d55" if report.ok else "#c62828")
        item.setForeground(0, QBrush(color))
        text = report.outcome + (f" — {report.problem}" if report.problem else "")
        item.setText(3, text)
        item.setToolTip(3, text)
        if not report.ok:
            for col in (2, 3):
                item.setForeground(col, QBrush(color))

    def finish(self, summary: str) -> None:
        for i, state in enumerate(self.states):
            if state in (PENDING, RUNNING):
                self.states[i] = SKIPPED
                item = self.tree.topLevelItem(i)
                if item is not None:
                    item.setText(3, "not run")
        self.title.setText(summary)
        self.stop_button.setEnabled(False)

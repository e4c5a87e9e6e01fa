"""Jobs dock: one row per block job with progress, speed and the job verbs.

Progress comes from the session's ``job progress`` notifications (events plus
``query-jobs``); speed is measured here from successive progress readings.
Pause/Resume/Cancel/Complete ask the main window, which sends the job verb.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.views.text import human_size

VERBS = ("pause", "resume", "cancel", "complete")


class JobRow:
    def __init__(self, tree: QTreeWidget, job_id: str, on_verb: Signal) -> None:
        self.item = QTreeWidgetItem(tree, [job_id, "", "", "", ""])
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        tree.setItemWidget(self.item, 3, self.bar)
        buttons = QWidget()
        lay = QHBoxLayout(buttons)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.buttons: dict[str, QPushButton] = {}
        for verb in VERBS:
            b = QPushButton(verb.capitalize())
            b.setToolTip({"pause": "Pause the job (job-pause)",
                          "resume": "Resume a paused job (job-resume)",
                          "cancel": "Cancel the job (job-cancel)",
                          "complete": "Finish a ready active commit: switch to the base "
                                      "(job-complete)"}[verb])
            b.clicked.connect(lambda _=False, v=verb: on_verb.emit(job_id, v))
            lay.addWidget(b)
            self.buttons[verb] = b
        tree.setItemWidget(self.item, 5, buttons)
        self.last: tuple[float, int] | None = None
        self.speed = 0.0

    def update(self, job: object) -> None:
        status = getattr(job, "status", "")
        current = int(getattr(job, "current", 0))
        total = int(getattr(job, "total", 0))
        now = time.monotonic()
        if self.last is not None and now > self.last[0] and current >= self.last[1]:
            dt = now - self.last[0]
            if dt > 0.05:
                self.speed = (current - self.last[1]) / dt
                self.last = (now, current)
        else:
            self.last = (now, current)
        self.item.setText(1, getattr(job, "type", ""))
        error = getattr(job, "error", None)
        self.item.setText(2, status + (f" — {error}" if error else ""))
        self.item.setForeground(2, Qt.GlobalColor.red if error else self.item.foreground(0))
        self.bar.setValue(int(1000 * current / total) if total else (
            1000 if status in ("concluded", "null", "ready") and not error else 0))
        self.bar.setFormat(f"{100 * current / total:.0f} %  ({human_size(current)} of "
                           f"{human_size(total)})" if total else "%p%")
        self.item.setText(4, f"{human_size(int(self.speed))}/s" if self.speed else "")
        running = status in ("running", "ready")
        self.buttons["pause"].setEnabled(running)
        self.buttons["resume"].setEnabled(status in ("paused", "standby"))
        self.buttons["cancel"].setEnabled(status in ("running", "paused", "ready", "standby"))
        self.buttons["complete"].setEnabled(status == "ready")


class JobsPanel(QWidget):
    verbRequested = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["job", "type", "status", "progress", "speed", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(3, 220)
        self.placeholder = QLabel("No block jobs. Stream or commit a node to start one.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove jobs that have ended from this list")
        self.clear_button.clicked.connect(self.clear_finished)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.placeholder)
        layout.addWidget(self.tree)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.clear_button)
        layout.addLayout(bottom)
        self.rows: dict[str, JobRow] = {}
        self._refresh_visibility()

    def update_job(self, job: object) -> None:
        job_id = str(getattr(job, "id", ""))
        row = self.rows.get(job_id)
        if row is None:
            row = self.rows[job_id] = JobRow(self.tree, job_id, self.verbRequested)
        row.update(job)
        self._refresh_visibility()

    def clear_finished(self) -> None:
        for job_id in list(self.rows):
            if self.rows[job_id].item.text(2).startswith(("null", "concluded", "aborting")):
                idx = self.tree.indexOfTopLevelItem(self.rows[job_id].item)
                self.tree.takeTopLevelItem(idx)
                del self.rows[job_id]
        self._refresh_visibility()

    def progress(self, job_id: str) -> int:
        """Per-mille shown for ``job_id`` (tests and screenshots read it)."""
        row = self.rows.get(job_id)
        return row.bar.value() if row else -1

    def _refresh_visibility(self) -> None:
        self.placeholder.setVisible(not self.rows)
        self.tree.setVisible(bool(self.rows))
        self.clear_button.setVisible(bool(self.rows))

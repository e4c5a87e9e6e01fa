"""Jobs dock: one row per block job, its state, progress, speed and the job verbs.

Progress comes from the session's ``job progress`` notifications (events plus
``query-jobs``); speed is measured here from successive progress readings.
Pause/Resume/Cancel/Complete ask the main window, which sends the job verb.

Each job is in one of a few states a user tells apart at a glance (:func:`job_state`):
running (blue), paused (amber), ready to complete (green), completed (green, done),
cancelled (grey: asked for, not a failure) and failed (red, with QEMU's error). A job
stays in the list once it ended, until "Clear finished".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtGui import QBrush, QColor
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

from gui.planner.consequences import size_text

VERBS = ("pause", "resume", "cancel", "complete")


@dataclass(frozen=True, slots=True)
class JobLook:
    """How a state is shown: its word, its colour, whether the job has ended."""

    word: str
    color: str
    ended: bool


LOOKS = {
    "running": JobLook("running", "#1e6bd6", False),
    "paused": JobLook("paused", "#c98a00", False),
    "ready": JobLook("ready — Complete finishes it", "#0e7c86", False),
    "stopping": JobLook("stopping…", "#6b7280", False),
    "completed": JobLook("completed", "#1f9d55", True),
    "cancelled": JobLook("cancelled", "#6b7280", True),
    "failed": JobLook("failed", "#c62828", True),
}


def job_state(job: object) -> str:
    """One of :data:`LOOKS`' keys for a job as last seen (a JobProgress).

    A cancelled job is reported by the session with the error text ``cancelled``
    (QEMU's BLOCK_JOB_CANCELLED has none): it was asked for, and is no failure.
    """
    status = str(getattr(job, "status", ""))
    error = getattr(job, "error", None)
    if error == "cancelled":
        return "cancelled"
    if error:
        return "failed"
    if status in ("paused", "standby"):
        return "paused"
    if status == "ready":
        return "ready"
    if status == "aborting":
        return "stopping"
    if status in ("concluded", "null"):
        return "completed"
    return "running"


class JobRow:
    def __init__(self, tree: QTreeWidget, job_id: str, on_verb: SignalInstance) -> None:
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
        self.state = "running"
        self.error = ""

    def update(self, job: object) -> None:
        status = str(getattr(job, "status", ""))
        current = int(getattr(job, "current", 0))
        total = int(getattr(job, "total", 0))
        self._measure(current)
        self.state = job_state(job)
        look = LOOKS[self.state]
        error = getattr(job, "error", None)
        self.error = str(error) if error and self.state == "failed" else ""
        self.item.setText(1, getattr(job, "type", ""))
        text = f"failed: {self.error}" if self.error else look.word
        self.item.setText(2, text)
        self.item.setToolTip(2, f"{text}\n(QEMU job status: {status or 'unknown'})")
        self.item.setForeground(2, QBrush(QColor(look.color)))
        fraction = current / total if total else (1.0 if self.state == "completed" else 0.0)
        self.bar.setValue(int(1000 * fraction))
        done = (f" ({size_text(current)} of {size_text(total)})" if total else "")
        self.bar.setFormat({"completed": "done",
                            "failed": f"failed at {100 * fraction:.0f} %",
                            "cancelled": f"cancelled at {100 * fraction:.0f} %",
                            "paused": f"paused at {100 * fraction:.0f} %"}.get(
            self.state, f"{100 * fraction:.0f} %{done}"))
        text_color = f"color: {look.color}; " if look.ended else ""
        self.bar.setStyleSheet(f"QProgressBar {{ {text_color}text-align: center; }} "
                               f"QProgressBar::chunk {{ background: {look.color}; }}")
        self.bar.setToolTip(text)
        live = not look.ended and self.state != "stopping"
        self.item.setText(4, f"{size_text(int(self.speed))}/s"
                          if self.speed and live and self.state != "paused" else "")
        self.buttons["pause"].setEnabled(live and self.state in ("running", "ready"))
        self.buttons["resume"].setEnabled(self.state == "paused")
        self.buttons["cancel"].setEnabled(live)
        self.buttons["complete"].setEnabled(self.state == "ready")

    def _measure(self, current: int) -> None:
        now = time.monotonic()
        if self.last is not None and now > self.last[0] and current >= self.last[1]:
            dt = now - self.last[0]
            if dt > 0.05:
                self.speed = (current - self.last[1]) / dt
                self.last = (now, current)
        else:
            self.last = (now, current)

    @property
    def ended(self) -> bool:
        return LOOKS[self.state].ended


class JobsPanel(QWidget):
    verbRequested = Signal(str, str)
    #: a job's state changed: (job id, state, QEMU's error or "")
    stateChanged = Signal(str, str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["job", "type", "state", "progress", "speed", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(2, 200)
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
        before = (row.state, row.error) if row.item.text(2) else None
        row.update(job)
        if (row.state, row.error) != before:
            self.stateChanged.emit(job_id, row.state, row.error)
        self._refresh_visibility()

    def clear_finished(self) -> None:
        for job_id in [j for j, row in self.rows.items() if row.ended]:
            self._remove(job_id)
            self.stateChanged.emit(job_id, "", "")
        self._refresh_visibility()

    def clear_all(self) -> None:
        """Forget every job (another peer: its jobs are not these)."""
        for job_id in list(self.rows):
            self._remove(job_id)
            self.stateChanged.emit(job_id, "", "")
        self._refresh_visibility()

    def _remove(self, job_id: str) -> None:
        idx = self.tree.indexOfTopLevelItem(self.rows[job_id].item)
        self.tree.takeTopLevelItem(idx)
        del self.rows[job_id]

    def progress(self, job_id: str) -> int:
        """Per-mille shown for ``job_id`` (tests and screenshots read it)."""
        row = self.rows.get(job_id)
        return row.bar.value() if row else -1

    def state(self, job_id: str) -> str:
        """The state shown for ``job_id`` ("" if not listed)."""
        row = self.rows.get(job_id)
        return row.state if row else ""

    def _refresh_visibility(self) -> None:
        self.placeholder.setVisible(not self.rows)
        self.tree.setVisible(bool(self.rows))
        self.clear_button.setVisible(bool(self.rows))

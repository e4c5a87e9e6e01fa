"""Job states on the canvas, as the jobs dock shows them.

While a job runs its card says running, paused or ready in the state's colour; once it
ended, QEMU's graph no longer has it, so the node it worked on keeps a mark —
"stream-vm1-top failed: Input/output error" in red, "… cancelled" in grey, "…
completed" in green — until the job is cleared from the jobs dock. The dock
(:mod:`gui.widgets.jobs`) decides the state; this module remembers which node each job
worked on and puts the marks there.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from engine.graph.snapshot import BLOCK_JOB, GraphSnapshot
from gui.planner.intents import Commit, Stream
from gui.planner.plan import Plan, WaitJob
from gui.widgets.canvas_marks import ABOVE, BELOW, CanvasMarks, Mark
from gui.widgets.jobs import LOOKS, JobsPanel

_SOURCE = "job:"
#: the job's link to the node it works on, best first
_ROLES = ("active node", "main node")


class JobMarks(QObject):
    """Marks of job states on job cards and on the nodes jobs worked on."""

    def __init__(self, marks: CanvasMarks, jobs: JobsPanel, parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self.marks = marks
        self.target: dict[str, str] = {}     # job id -> node it works on
        self.states: dict[str, tuple[str, str]] = {}
        jobs.stateChanged.connect(self.job_state)

    def plan_started(self, plan: Plan) -> None:
        """A plan starts jobs: each works on the node its intent names (known before
        the graph shows the job, which may fail before it ever does)."""
        node = {Stream: "node", Commit: "top"}.get(type(plan.intent))
        if node is None:
            return
        for step in plan.steps:
            if isinstance(step, WaitJob):
                self.target[step.job_id] = getattr(plan.intent, node)

    def graph_shown(self, snapshot: GraphSnapshot | None) -> None:
        """Learn which node each job of ``snapshot`` works on."""
        if snapshot is None:
            return
        for key, node in snapshot.nodes.items():
            if node.kind != BLOCK_JOB:
                continue
            children = snapshot.children(key)
            best = sorted(
                (e for e in children if not snapshot.nodes[e.child].implicit),
                key=lambda e: _ROLES.index(e.role) if e.role in _ROLES else len(_ROLES))
            if best and node.name not in self.target:
                self.target[node.name] = best[0].child
        for job_id, (state, error) in list(self.states.items()):
            self._show(job_id, state, error, snapshot)

    def job_state(self, job_id: str, state: str, error: str) -> None:
        """The dock shows ``job_id`` in ``state`` ("": no longer listed)."""
        self._show(job_id, state, error, None)
        if not state:
            self.states.pop(job_id, None)
            self.target.pop(job_id, None)
        else:
            self.states[job_id] = (state, error)

    def _show(self, job_id: str, state: str, error: str, snapshot: GraphSnapshot | None
              ) -> None:
        card_key, source = f"job:{job_id}", f"{_SOURCE}{job_id}"
        look = LOOKS.get(state)
        # on the job's own card while it exists
        if look is not None and not look.ended:
            self.marks.set_mark(card_key, source, Mark(state, look.color, ABOVE,
                                                       tooltip=f"{job_id}: {look.word}"))
        else:
            self.marks.set_mark(card_key, source, None)
        # on the node it worked on, once it ended
        target = self.target.get(job_id)
        if target is None:
            return
        if state in ("failed", "cancelled", "completed") and look is not None:
            text = f"{job_id} failed: {error}" if state == "failed" else f"{job_id} {state}"
            self.marks.set_mark(target, source, Mark(text, look.color, BELOW, tooltip=(
                f"{text}\n(clear it with Clear finished in the jobs dock)")))
        else:
            self.marks.set_mark(target, source, None)

    def clear(self) -> None:
        self.target.clear()
        self.states.clear()
        self.marks.clear_source(_SOURCE)

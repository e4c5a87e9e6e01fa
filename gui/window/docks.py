"""The editor window's docks: the inspector and staged edits on the right, jobs, the QMP
log and replays below.

The widgets themselves are in :mod:`gui.widgets`; this module places them. Each dock
has an object name (``dock-inspector``, ``dock-jobs``, ``dock-log``, ``dock-staging``,
``dock-replay``) so that Qt can restore where the user moved it. The staged edits and
replay docks start hidden: they show when staging starts or a script is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

from gui.widgets.inspector import Inspector
from gui.widgets.jobs import JobsPanel
from gui.widgets.qmp_log import QmpLog
from gui.widgets.replay_panel import ReplayPanel
from gui.widgets.staging_panel import StagingPanel


@dataclass(frozen=True)
class Docks:
    inspector: Inspector
    jobs: JobsPanel
    qmp_log: QmpLog
    staging: StagingPanel
    replay: ReplayPanel
    #: by name: "inspector", "jobs", "log", "staging", "replay" (their toggle actions
    #: go in the View menu)
    docks: dict[str, QDockWidget]


def build_docks(window: QMainWindow) -> Docks:
    """Create the docks on ``window``: jobs, the log and replays tabbed together below
    (jobs in front), staged edits under the inspector."""
    inspector, jobs, qmp_log = Inspector(), JobsPanel(), QmpLog()
    staging, replay = StagingPanel(), ReplayPanel()
    docks: dict[str, QDockWidget] = {}
    for name, title, widget, area in (
        ("inspector", "Inspector", inspector, Qt.DockWidgetArea.RightDockWidgetArea),
        ("jobs", "Jobs", jobs, Qt.DockWidgetArea.BottomDockWidgetArea),
        ("log", "QMP log", qmp_log, Qt.DockWidgetArea.BottomDockWidgetArea),
        ("replay", "Replay", replay, Qt.DockWidgetArea.BottomDockWidgetArea),
        ("staging", "Staged edits", staging, Qt.DockWidgetArea.RightDockWidgetArea),
    ):
        dock = QDockWidget(title, window)
        dock.setObjectName(f"dock-{name}")
        dock.setWidget(widget)
        window.addDockWidget(area, dock)
        docks[name] = dock
    window.tabifyDockWidget(docks["jobs"], docks["log"])
    window.tabifyDockWidget(docks["log"], docks["replay"])
    docks["replay"].hide()
    docks["staging"].hide()
    docks["jobs"].raise_()
    window.resizeDocks([docks["jobs"]], [190], Qt.Orientation.Vertical)
    window.resizeDocks([docks["inspector"]], [330], Qt.Orientation.Horizontal)
    return Docks(inspector, jobs, qmp_log, staging, replay, docks)

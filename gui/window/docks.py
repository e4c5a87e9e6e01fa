"""The editor window's docks: the inspector on the right, jobs and the QMP log below.

The widgets themselves are in :mod:`gui.widgets`; this module places them. Each dock
has an object name (``dock-inspector``, ``dock-jobs``, ``dock-log``) so that Qt can
restore where the user moved it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

from gui.widgets.inspector import Inspector
from gui.widgets.jobs import JobsPanel
from gui.widgets.qmp_log import QmpLog


@dataclass(frozen=True)
class Docks:
    inspector: Inspector
    jobs: JobsPanel
    qmp_log: QmpLog
    #: by name: "inspector", "jobs", "log" (their toggle actions go in the View menu)
    docks: dict[str, QDockWidget]


def build_docks(window: QMainWindow) -> Docks:
    """Create the docks on ``window``: jobs and the log tabbed together, jobs in front."""
    inspector, jobs, qmp_log = Inspector(), JobsPanel(), QmpLog()
    docks: dict[str, QDockWidget] = {}
    for name, title, widget, area in (
        ("inspector", "Inspector", inspector, Qt.DockWidgetArea.RightDockWidgetArea),
        ("jobs", "Jobs", jobs, Qt.DockWidgetArea.BottomDockWidgetArea),
        ("log", "QMP log", qmp_log, Qt.DockWidgetArea.BottomDockWidgetArea),
    ):
        dock = QDockWidget(title, window)
        dock.setObjectName(f"dock-{name}")
        dock.setWidget(widget)
        window.addDockWidget(area, dock)
        docks[name] = dock
    window.tabifyDockWidget(docks["jobs"], docks["log"])
    docks["jobs"].raise_()
    window.resizeDocks([docks["jobs"]], [190], Qt.Orientation.Vertical)
    window.resizeDocks([docks["inspector"]], [330], Qt.Orientation.Horizontal)
    return Docks(inspector, jobs, qmp_log, docks)

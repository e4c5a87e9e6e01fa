"""Teaching and offline entries for the editor's menus: one call, ``install_teaching(window)``.

Adds to a QMainWindow's menu bar (creating the menus if missing):

* Help → Tours… — the tour window (its own fresh bundled engine and scratch images,
  drawn on the editor's graph scene; never the user's session or files);
* File → Inspect images on disk… — the offline window on the chosen image files
  (chains, broken links with fixes, offline edits as qemu-img commands);
* File → Compare graph with disk… — the live graph (``window.scene.snapshot``) beside
  the chains its images name on disk.

The editor's main window calls it once after building its own menus
(:mod:`gui.window.actions`). The windows it opens are kept on
``window.teaching_windows`` so they stay alive.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from gui.offline.window import OfflineWindow
from gui.tours.window import TourWindow
from gui.widgets.compare_dialog import CompareDialog


def _menu(window: QMainWindow, title: str) -> QMenu:
    bar = window.menuBar()
    for action in bar.actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text().replace("&", "") == title:
            return menu
    return bar.addMenu(f"&{title}")


def _keep(window: Any, other: Any) -> Any:
    kept = getattr(window, "teaching_windows", None)
    if kept is None:
        kept = []
        window.teaching_windows = kept
    kept.append(other)
    return other


def open_tours(window: QMainWindow, tour: str | None = None) -> Any:
    tw = _keep(window, TourWindow(tour))
    tw.show()
    tw.panel.start()
    return tw


def open_offline(window: QMainWindow, paths: list[str] | None = None) -> Any:
    if paths is None:
        paths, _ = QFileDialog.getOpenFileNames(window, "Inspect images on disk", "",
                                                "Disk images (*.qcow2 *.img *.raw);;All (*)")
        if not paths:
            return None
    ow = _keep(window, OfflineWindow(list(paths)))
    ow.resize(1200, 760)
    ow.show()
    return ow


def compare_live_with_disk(window: QMainWindow) -> Any:
    scene = getattr(window, "scene", None)
    snapshot = getattr(scene, "snapshot", None)
    if snapshot is None:
        QMessageBox.information(window, "Compare graph with disk", "No graph is shown yet.")
        return None
    dialog = _keep(window, CompareDialog(snapshot, window))
    dialog.show()
    return dialog


def install_teaching(window: QMainWindow) -> dict[str, QAction]:
    """Add the tour, offline and compare entries to ``window``'s menus; returns them."""
    actions = {
        "tours": QAction("Tours…", window),
        "offline": QAction("Inspect images on disk…", window),
        "compare": QAction("Compare graph with disk…", window),
    }
    actions["tours"].setStatusTip("Guided tours of QMP block operations on scratch images")
    actions["offline"].setStatusTip("Open image files without QEMU: chains, broken links, fixes")
    actions["compare"].setStatusTip("The live graph beside the chains its images name on disk")
    actions["tours"].triggered.connect(lambda: open_tours(window))
    actions["offline"].triggered.connect(lambda: open_offline(window))
    actions["compare"].triggered.connect(lambda: compare_live_with_disk(window))
    _menu(window, "Help").addAction(actions["tours"])
    file_menu = _menu(window, "File")
    file_menu.addAction(actions["offline"])
    file_menu.addAction(actions["compare"])
    return actions

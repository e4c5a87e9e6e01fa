"""The offline window: image files on disk, their chains, broken links and fixes.

``blockgraph offline IMAGE…`` (and the editor's File → Inspect images on disk…) shows
every image's chain, drawn from :func:`engine.offline.offline_snapshot` — no QEMU, no
engine process. Broken links are drawn dashed red and their nodes marked; right-click a
node for the fixes its link problem offers and for the offline edits (rebase safe/unsafe,
stream into top, flatten, commit). The dock on the right shows the selected image's
chain layer by layer (which layer holds which data) and lists its problems. Every edit
is confirmed first with the equivalent ``qemu-img`` command, and logged with it
afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import html
import os
from collections.abc import Callable
from typing import Any

import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.formats.errors import ImageError
from engine.offline import (
    EditResult,
    Fix,
    OfflineEditError,
    apply_fix,
    commit,
    flatten,
    inspect_chain,
    offline_snapshot,
    rebase,
    stream_into_top,
)
from engine.offline.commands import commit_command, convert_command, rebase_command
from engine.offline.snapshot import OfflineGraph
from gui.lifecycle.display import exit_status_without_display
from gui.lifecycle.shutdown import end_without_teardown
from gui.lifecycle.signals import close_on_signals
from gui.widgets.compact_graph import CompactGraphView
from gui.widgets.compare_dialog import compare_with_address
from gui.widgets.layer_bars import LayerBars

#: ``confirm(title, text) -> bool``; the window asks with a message box by default
Confirm = Callable[[str, str], bool]


class OfflineWindow(QMainWindow):
    def __init__(self, paths: list[str] | None = None, *, confirm: Confirm | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("blockgraph — images on disk")
        self.paths: list[str] = []
        self.graph: OfflineGraph | None = None
        self.selected: str | None = None
        self.confirm = confirm or self._ask
        self._tasks: set[asyncio.Task[Any]] = set()
        self.view = CompactGraphView(self)
        self.setCentralWidget(self.view)

        dock = QDockWidget("Chain", self)
        dock.setObjectName("chainDock")
        body = QWidget(dock)
        lay = QVBoxLayout(body)
        self.chain_title = QLabel("Select an image", body)
        self.chain_title.setWordWrap(True)
        self.bars = LayerBars(body)
        self.details = QTextBrowser(body)
        lay.addWidget(self.chain_title)
        lay.addWidget(self.bars)
        lay.addWidget(self.details, 1)
        dock.setWidget(body)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        log_dock = QDockWidget("qemu-img equivalents", self)
        log_dock.setObjectName("offlineLog")
        self.log = QPlainTextEdit(log_dock)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        log_dock.setWidget(self.log)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, log_dock)
        self.resizeDocks([log_dock], [120], Qt.Orientation.Vertical)
        self.resizeDocks([dock], [440], Qt.Orientation.Horizontal)

        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.statusBar().addPermanentWidget(self.progress)
        self._menus()
        self.view.nodeContextMenuRequested.connect(self._context_menu)
        self.view.nodeActivated.connect(self.select)
        self.view.scene().selectionChanged.connect(self._selection_changed)
        if paths:
            self.open_paths(paths)

    # -- menus --------------------------------------------------------------------------
    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("Open image…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._open_dialog)
        file_menu.addAction(open_action)
        reload_action = QAction("Reload", self)
        reload_action.setShortcut(QKeySequence.StandardKey.Refresh)
        reload_action.triggered.connect(self.reload)
        file_menu.addAction(reload_action)
        compare_action = QAction("Compare with a live peer…", self)
        compare_action.triggered.connect(self._compare_dialog)
        file_menu.addAction(compare_action)
        file_menu.addSeparator()
        close_action = QAction("Close", self)
        close_action.setShortcut(QKeySequence.StandardKey.Close)
        close_action.triggered.connect(self.close)
        file_menu.addAction(close_action)

    def _open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open image", "",
                                                "Disk images (*.qcow2 *.img *.raw);;All (*)")
        if files:
            self.open_paths(files)

    def _compare_dialog(self) -> None:
        address, ok = QInputDialog.getText(self, "Compare with a live peer",
                                           "QMP address (unix:PATH or tcp:HOST:PORT):")
        if ok and address:
            task = asyncio.ensure_future(compare_with_address(address, self))
            self._tasks.add(task)        # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)

    # -- model --------------------------------------------------------------------------
    def open_paths(self, paths: list[str]) -> None:
        for p in paths:
            p = os.path.abspath(p)
            if p not in self.paths:
                self.paths.append(p)
        self.reload()
        if self.selected is None and self.paths:
            self.select(os.path.abspath(self.paths[0]))

    def reload(self) -> None:
        self.graph = offline_snapshot(self.paths)
        self.view.set_problems(self.graph.problem_nodes(), self.graph.broken_edges)
        self.view.show_snapshot(self.graph.snapshot)
        for path, err in self.graph.errors.items():
            self.log.appendPlainText(f"# cannot open {path}: {err}")
        broken = len(self.graph.broken_edges)
        unreadable = len(self.graph.errors)
        self.statusBar().showMessage(
            f"{len(self.graph.snapshot.nodes)} images, "
            + (f"{broken} broken link(s)" if broken else "no broken links")
            + (f"; {unreadable} file(s) could not be opened (see the log below)"
               if unreadable else ""))
        if self.selected is not None:
            self.select(self.selected)

    def _selection_changed(self) -> None:
        items = self.view.scene().selectedItems()
        if items and hasattr(items[0], "info"):
            self.select(items[0].info.key)

    def select(self, key: str) -> None:
        """Show the chain of the image ``key`` (its absolute path) in the dock."""
        self.selected = key
        if self.graph is None or key not in self.graph.snapshot.nodes:
            return
        self.view.set_highlight((key,))
        info = self.graph.snapshot.nodes[key]
        self.chain_title.setText(f"<b>{html.escape(info.name)}</b> — {html.escape(key)}")
        if info.driver in ("missing", "unreadable"):
            self.bars.set_report(None)
            self.details.setHtml(f"<p>{html.escape(info.filename)} is {info.driver}.</p>")
            return
        try:
            report = inspect_chain(key)
        except ImageError as exc:
            self.bars.set_report(None)
            self.details.setHtml(f"<p style='color:#b00020'>{html.escape(str(exc))}</p>")
            return
        self.bars.set_report(report)
        self.bars.setMinimumHeight(self.bars.sizeHint().height())
        parts = ["<table cellspacing=4>"]
        for layer in report.layers:
            parts.append(
                f"<tr><td><b>{html.escape(layer.name)}</b></td><td>{layer.format}</td>"
                f"<td>{layer.data_bytes >> 10} KiB data</td>"
                f"<td>{layer.zero_bytes >> 10} KiB zero</td>"
                f"<td>→ {html.escape(layer.backing_file or '(no backing file)')}</td></tr>")
        parts.append("</table>")
        for problem in report.problems:
            colour = "#8a6d00" if problem.continues else "#b00020"
            fixes = "".join(f"<li>{html.escape(f.label)}: <code>{html.escape(f.command)}</code>"
                            f"</li>" for f in problem.fixes)
            parts.append(f"<p style='color:{colour}'>⚠ {html.escape(problem.message)}</p>"
                         f"<ul>{fixes}</ul>")
        if report.ok:
            parts.append("<p style='color:#1b5e20'>The chain is complete.</p>")
        parts.append("<p><i>Right-click an image for fixes and offline edits.</i></p>")
        self.details.setHtml("".join(parts))

    # -- context menu -------------------------------------------------------------------
    def actions_for(self, key: str) -> list[tuple[str, Callable[[], object]]]:
        """The context-menu entries for node ``key``: fixes first, then edits."""
        if self.graph is None or key not in self.graph.snapshot.nodes:
            return []
        info = self.graph.snapshot.nodes[key]
        entries: list[tuple[str, Callable[[], object]]] = []
        owners = [key]
        if info.driver in ("missing", "unreadable"):   # the fixes live on the overlays
            owners = [e.parent for e in self.graph.snapshot.parents(key)]
        problems = [p for k in owners for p in self.graph.problems.get(k, ())]
        for problem in problems:
            for fix in problem.fixes:
                entries.append((f"Fix: {fix.label}", functools.partial(self.run_fix, fix)))
        if info.driver != "qcow2":
            return entries
        entries.append(("Rebase onto another image (safe)…",
                        lambda: self._rebase_dialog(key, safe=True)))
        entries.append(("Rebase onto another image (header only, unsafe)…",
                        lambda: self._rebase_dialog(key, safe=False)))
        # stream and commit read (and commit writes) the chain below: only when all of it
        # is there (a missing or unreadable backing file has the fixes above instead)
        if info.header_backing and self._chain_below_readable(key):
            entries.append(("Stream the chain into this image",
                            lambda: self.run_stream(key)))
            entries.append(("Commit into its backing file", lambda: self.run_commit(key)))
        entries.append(("Flatten into a new image…", lambda: self._flatten_dialog(key)))
        return entries

    def _chain_below_readable(self, key: str) -> bool:
        """Whether every backing file below ``key`` is on disk and readable."""
        assert self.graph is not None
        snap = self.graph.snapshot
        seen = {key}
        below = snap.backing(key)
        if below is None:
            return False
        while below is not None and below not in seen:
            if snap.nodes[below].driver in ("missing", "unreadable"):
                return False
            seen.add(below)
            below = snap.backing(below)
        return True

    def _context_menu(self, key: str, where: QPoint) -> None:
        menu = QMenu(self)
        for label, action in self.actions_for(key):
            menu.addAction(label).triggered.connect(lambda _=False, a=action: a())
        if not menu.isEmpty():
            menu.exec(where)

    def _rebase_dialog(self, key: str, *, safe: bool) -> None:
        start = os.path.dirname(key)
        new, _ = QFileDialog.getOpenFileName(self, "New backing file", start,
                                             "Disk images (*.qcow2 *.img *.raw);;All (*)")
        if new:
            name = (os.path.basename(new) if os.path.dirname(os.path.abspath(new)) == start
                    else os.path.abspath(new))
            self.run_rebase(key, name, safe=safe)

    def _flatten_dialog(self, key: str) -> None:
        out, _ = QFileDialog.getSaveFileName(self, "Flatten into", key + ".flat.qcow2",
                                             "qcow2 (*.qcow2)")
        if out:
            self.run_flatten(key, out)

    # -- edits --------------------------------------------------------------------------
    def run_fix(self, fix: Fix) -> EditResult | None:
        text = f"{fix.label}\n\n{fix.command}\n\n{fix.warning}".strip()
        return self._edit("Fix a broken link", text, lambda p: apply_fix(fix, progress=p))

    def run_rebase(self, key: str, backing: str | None, *, safe: bool) -> EditResult | None:
        cmd = rebase_command(key, "qcow2", backing, None, safe=safe)
        note = ("The guest content is kept: whatever differs between the old and the new "
                "backing file is copied into the image first." if safe else
                "Only the header is rewritten; guest data is not compared. If the new "
                "backing file differs from the old one, the guest sees different data.")
        return self._edit("Rebase", f"{cmd}\n\n{note}",
                          lambda p: rebase(key, backing, safe=safe, progress=p))

    def run_stream(self, key: str) -> EditResult | None:
        cmd = rebase_command(key, "qcow2", None, None, safe=True)
        return self._edit("Stream into the image",
                          f"{cmd}\n\nCopies the whole backing chain into the image and drops "
                          "its backing file.", lambda p: stream_into_top(key, progress=p))

    def run_commit(self, key: str) -> EditResult | None:
        cmd = commit_command(key, "qcow2", None, drop=True)
        return self._edit("Commit", f"{cmd}\n\nWrites the image's data into its backing file "
                          "and then empties the image.", lambda p: commit(key, progress=p))

    def run_flatten(self, key: str, output: str) -> EditResult | None:
        cmd = convert_command(key, "qcow2", output, "qcow2")
        result = self._edit("Flatten", f"{cmd}\n\nWrites the chain's guest view into a new "
                            "standalone image.", lambda p: flatten(key, output, progress=p))
        if result is not None:
            self.open_paths([output])
        return result

    def _edit(self, title: str, text: str,
              work: Callable[[Callable[[int, int], None]], EditResult]) -> EditResult | None:
        if not self.confirm(title, text):
            return None
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.show()

        def progress(done: int, total: int) -> None:
            self.progress.setValue(int(1000 * done / total) if total else 1000)
            QApplication.processEvents()

        try:
            result = work(progress)
        except (OfflineEditError, ImageError, OSError) as exc:
            self.log.appendPlainText(f"# {title} failed: {exc}")
            if self.confirm == self._ask:
                QMessageBox.warning(self, title, str(exc))
            self.statusBar().showMessage(f"{title} failed: {exc}")
            return None
        finally:
            self.progress.hide()
        self.log.appendPlainText(result.command)
        for w in result.warnings:
            self.log.appendPlainText(f"# warning: {w}")
        self.statusBar().showMessage(f"done: {result.command}")
        self.reload()
        return result

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Ok
                                      | QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Ok


def main(argv: list[str]) -> int:
    """Open the offline window on the image files in ``argv``."""
    if (status := exit_status_without_display("blockgraph offline")) is not None:
        return status
    app = QApplication.instance() or QApplication([])
    # asyncio inside Qt's own loop (app.exec() below), for Compare with a live peer
    asyncio.set_event_loop(qasync.QEventLoop(app, already_running=True))
    window = OfflineWindow(list(argv))
    window.resize(1200, 760)
    window.show()
    close_on_signals(window.close, window)
    status = int(app.exec())
    if window.isVisible():   # Qt left its loop by itself: the display went away
        end_without_teardown(status)
    return status

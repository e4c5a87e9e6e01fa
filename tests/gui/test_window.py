"""Window behaviour that needs no peer: search, keyboard walk, settings, log, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from gui.session import TrafficLog
from gui.widgets.qmp_log import qmp_shell_line
from gui.window.main_window import MainWindow
from tests.gui.test_layout import chains

pytestmark = pytest.mark.gui


def test_search_and_keyboard_walk(window: MainWindow) -> None:
    window.show_snapshot(chains())
    assert window.find_node("mid") == "mid1"
    assert window.view.selected_key() == "mid1"
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Down)
    assert window.view.selected_key() == "base"
    QTest.keyClick(window.view, Qt.Key.Key_Up)
    assert window.view.selected_key() in ("mid1", "top2")
    assert window.find_node("no-such-node") is None
    assert "no node matches" in window.error_label.text()
    # the inspector follows the selection
    window.view.center_on_node("top1")
    assert "top1" in window.inspector.text.toPlainText()


def test_context_menus_offer_the_node_edits(window: MainWindow) -> None:
    window.show_snapshot(chains())
    window.view.center_on_node("mid1")
    texts = [a.text() for a in window.build_context_menu("mid1", window.view.mapToScene(0, 0))
             .actions()]
    for wanted in ("&Snapshot…", "S&tream into this node…", "&Commit down to…",
                   "&Delete node", "Copy as &QMP"):
        assert wanted in texts
    empty = [a.text() for a in window.build_context_menu(None, window.view.mapToScene(0, 0))
             .actions()]
    assert "Open image here…" in empty
    copied = json.loads(window.copy_as_qmp_text("mid1"))
    assert copied["execute"] == "blockdev-add"
    assert copied["arguments"]["node-name"] == "mid1"
    assert copied["arguments"]["backing"] == "base"


def test_settings_are_remembered(qtbot: Any, aloop: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "s.ini")
    first = MainWindow(QSettings(path, QSettings.Format.IniFormat), scheme="light")
    first.resize(640, 480)  # within the offscreen screen (800x600)
    first.show()
    first.connection.remember("unix:/tmp/a.sock")
    first.connection.remember("tcp:localhost:4444")
    first.set_dark(True)
    first.close()
    second = MainWindow(QSettings(path, QSettings.Format.IniFormat))
    second.show()
    assert (second.width(), second.height()) == (640, 480)
    assert second.recent() == ["tcp:localhost:4444", "unix:/tmp/a.sock"]
    assert second.scheme.name == "dark"
    assert [a.text() for a in second.recent_menu.actions()] == second.recent()
    second.close()
    for w in (first, second):
        w.deleteLater()


def test_qmp_log_filters_highlights_and_copies(window: MainWindow) -> None:
    log = TrafficLog()
    cmd = {"execute": "blockdev-del", "arguments": {"node-name": "a b"}}
    entries = [log.record("sent", cmd),
               log.record("received", {"error": {"class": "GenericError", "desc": "boom"}}),
               log.record("sent", {"execute": "query-named-block-nodes"}, background=True),
               log.record("received", {"event": "JOB_STATUS_CHANGE", "data": {}})]
    for e in entries:
        window.qmp_log.add(e)
    assert window.qmp_log.visible_count() == 3  # background poll hidden
    window.qmp_log.show_background.setChecked(True)
    assert window.qmp_log.visible_count() == 4
    window.qmp_log.filter.setText("boom")
    assert window.qmp_log.visible_count() == 1
    window.qmp_log.filter.setText("")
    window.qmp_log.show_background.setChecked(False)
    shell = window.qmp_log.selection_text(as_shell=True)
    # qmp-shell would keep the quotes of node-name="a b": the command goes as JSON
    assert shell == qmp_shell_line(cmd) == (
        "# qmp-shell cannot carry this command (blockdev-del node-name: the string 'a b' "
        "cannot be written in qmp-shell syntax (qmp-shell keeps quotes and splits at white "
        "space)); as JSON:\n" + json.dumps(cmd))
    assert json.loads(window.qmp_log.selection_text(as_shell=False).splitlines()[0]) == cmd
    error_item = window.qmp_log.tree.topLevelItem(1)
    assert error_item.foreground(3).color().name() == "#d03b3b"


def test_export_every_format(window: MainWindow, tmp_path: Path) -> None:
    window.show_snapshot(chains())
    for ext in ("svg", "png", "dot", "json"):
        out = tmp_path / f"g.{ext}"
        window.export_to(str(out))
        assert out.stat().st_size > 100, ext
    assert json.loads((tmp_path / "g.json").read_text())["nodes"]


def test_blockgraph_without_arguments_opens_the_demo_on_the_bundled_engine(
        qtbot: Any, aloop: Any, window: MainWindow, tmp_path: Path) -> None:
    from gui.window import app
    from tests.gui.conftest import run

    args = app.parse_args(["--demo-dir", str(tmp_path / "demo")])
    run(qtbot, aloop, app.start(window, args))
    snap = window.scene.snapshot
    assert {"base", "vm1-mid", "vm1-top", "vm2-top", "vm3-top", "spare"} <= set(snap.nodes)
    assert {"backend:vm1", "backend:vm2", "backend:vm3"} <= set(snap.nodes)
    assert snap.backing("vm2-top") == "base" and snap.backing("vm1-top") == "vm1-mid"
    assert window.peer_label.text().startswith("QEMU 7.2")
    assert "connected" in window.conn_label.text()
    # the demo was built with plain QMP, visible in the log
    sent = window.bridge.session.traffic.sent_commands(0)
    assert sent.count("blockdev-add") == 6


def test_plan_preview_shows_the_qmp(qapp: Any) -> None:
    from PySide6.QtWidgets import QPlainTextEdit

    from gui.planner import PlanContext, plan_intent
    from gui.planner.intents import SetBacking
    from gui.widgets.plan_review import PlanReviewDialog, Review, plan_text

    plan = plan_intent(PlanContext(chains()), SetBacking("top2", "mid1"))
    assert plan.ok, plan.refusals
    dialog = PlanReviewDialog(Review(plan))
    text = dialog.findChild(QPlainTextEdit).toPlainText()
    assert text == plan_text(plan)
    assert '"execute": "blockdev-reopen"' in text and '"backing": "mid1"' in text
    assert dialog.skip.text().startswith("Don't preview")
    dialog.deleteLater()

"""The keyboard table in the README is what the window binds, and the toolbar explains
itself: every key combination the README lists is some action's shortcut on every
platform (Qt's standard keys differ: Redo is Ctrl+Y on some), and every toolbar button
has a tooltip that names its shortcut."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QToolBar

from gui.window.main_window import MainWindow

README = Path(__file__).resolve().parents[2] / "README.md"
COMBO = re.compile(r"^(?:(?:Ctrl|Shift|Alt)\+)*(?:F\d{0,2}|Del|[A-Z0-9])$")


def readme_key_combinations() -> list[str]:
    """The single-key and Ctrl/Shift combinations in the README's keys table."""
    text = README.read_text()
    table = text.split("| keys / mouse | action |", 1)[1].split("\n\n", 1)[0]
    combos = []
    for row in table.splitlines()[2:]:
        keys = row.split("|")[1]
        for part in re.split(r"\s*[·,]\s*", keys.strip()):
            if COMBO.match(part):
                combos.append(part)
    return combos


def bound_shortcuts(window: MainWindow) -> dict[str, QAction]:
    return {seq.toString(): act for act in window.findChildren(QAction)
            for seq in act.shortcuts()}


def test_readme_table_is_read() -> None:
    combos = readme_key_combinations()
    assert "Ctrl+Shift+Z" in combos and "F" in combos and "Del" in combos
    assert len(combos) >= 18


def test_every_readme_shortcut_is_bound(window: MainWindow) -> None:
    bound = bound_shortcuts(window)
    missing = [c for c in readme_key_combinations()
               if QKeySequence(c).toString() not in bound]
    assert missing == []


def test_redo_and_quit_have_keys_on_every_platform(window: MainWindow) -> None:
    redo = {s.toString() for s in window.act_redo.shortcuts()}
    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= redo
    assert window.act_quit.shortcut().toString() == "Ctrl+Q"


def test_toolbar_buttons_have_tooltips_with_their_shortcut(window: MainWindow) -> None:
    buttons = [act for bar in window.findChildren(QToolBar) for act in bar.actions()
               if act.text() and not act.isSeparator()]
    assert buttons
    for act in buttons:
        plain = act.text().replace("&", "").rstrip("…")
        assert act.toolTip() and act.toolTip() != plain, act.text()
        if not act.shortcut().isEmpty():
            assert f"({act.shortcut().toString()})" in act.toolTip(), act.text()


def test_ctrl_shift_l_switches_the_theme(qtbot: Any, window: MainWindow) -> None:
    window.activateWindow()
    qtbot.waitExposed(window)
    before = window.scheme.name
    qtbot.keyClick(window, Qt.Key.Key_L,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.scheme.name != before

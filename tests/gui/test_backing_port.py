"""Only a node that can have a backing link shows the round port to drag one from.

A raw image (and a protocol or filter node) cannot be backed by anything — QEMU refuses
with "Driver 'raw' of node '…' does not support backing files" — yet its card showed the
port, and a drag started from it. Here a raw and a qcow2 image are open in the real
window: only the qcow2 card has the port, and a press where the raw card's port would be
starts no drag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from engine.formats import create_qcow2, create_raw
from gui.window.main_window import MainWindow
from tests.gui.conftest import run
from tests.gui.test_editor import view_point
from tests.gui.test_edits import idle

pytestmark = pytest.mark.gui


def press_release(window: MainWindow, at: QPointF) -> bool:
    """Press at ``at``; whether a link drag started (then released where it began)."""
    vp, p = window.view.viewport(), view_point(window, at)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    dragging = window.view.dragging()
    if dragging:
        QTest.keyClick(window.view, Qt.Key.Key_Escape)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    return dragging


def test_a_raw_image_has_no_backing_port(qtbot: Any, aloop: Any, window: MainWindow,
                                         tmp_path: Path) -> None:
    create_raw(tmp_path / "plain.img", 1 << 20)
    create_qcow2(tmp_path / "disk.qcow2", 1 << 20)
    assert run(qtbot, aloop, window.open_bundled(demo=False))
    window.open_images([str(tmp_path / "plain.img"), str(tmp_path / "disk.qcow2")])
    qtbot.waitUntil(lambda: {"plain", "disk"} <= set(window.scene.nodes) and idle(window),
                    timeout=10000)
    window.view.fit()
    raw, qcow2 = window.scene.nodes["plain"], window.scene.nodes["disk"]
    assert raw.info.driver == "raw" and qcow2.info.driver == "qcow2"
    assert not raw.has_backing_port() and qcow2.has_backing_port()
    file_card = window.scene.nodes[window.scene.snapshot.child("disk", "file")]
    assert not file_card.has_backing_port()
    where = raw.backing_port_rect().center()     # where a port would be drawn
    assert not press_release(window, where)
    assert press_release(window, qcow2.backing_port_rect().center())

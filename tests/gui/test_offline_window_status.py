"""The offline window's status line does not call a set with an unreadable file fine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.qemu import create


def test_status_counts_files_that_could_not_be_opened(qtbot: Any, tmp_path: Path) -> None:
    from gui.offline.window import OfflineWindow

    good = create(tmp_path / "good.qcow2", "1M")
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb\x00\x00\x00\x03" + bytes(200))  # cluster_bits 0
    window = OfflineWindow([str(good), str(bad)], confirm=lambda _t, _x: False)
    qtbot.addWidget(window)
    status = window.statusBar().currentMessage()
    assert "1 images" in status
    assert "1 file(s) could not be opened" in status
    assert "bad.qcow2" in window.log.toPlainText()

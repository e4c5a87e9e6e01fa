"""The medium dialog of a drive's card: its file chooser offers ISO and raw images, the
format is read from the chosen file's header, a file that cannot be read says why, and
the read-only mode is chosen with the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog, QPushButton

from gui.widgets.media_dialog import MediumChoice, MediumDialog
from tests.support.qemu import create

pytestmark = pytest.mark.gui


def test_the_medium_dialog_chooses_iso_and_raw_images_with_their_format_and_mode(
        qapp: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    iso = tmp_path / "install.iso"
    iso.write_bytes(b"\x41" * (1 << 20))
    disk = tmp_path / "floppy.qcow2"
    create(disk, "1440K")
    asked: list[tuple[str, str]] = []

    def chooser(parent: Any, title: str, start: str, filters: str) -> tuple[str, str]:
        asked.append((start, filters))
        return str(disk), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", chooser)
    dialog = MediumDialog("cd0", str(iso))
    assert dialog.windowTitle() == "Change the medium of cd0"
    assert dialog.choice() is None                             # nothing chosen yet
    (browse,) = [b for b in dialog.findChildren(QPushButton) if b.text() == "Browse…"]
    browse.click()
    ((start, filters),) = asked
    assert start == str(tmp_path)                              # where the current one is
    names = filters.split(";;")
    assert names[0].startswith("CD/DVD and floppy images (") and "*.iso" in names[0]
    assert "ISO images (*.iso)" in names and "Raw images (*.img *.raw)" in names
    # the qcow2 header was read: the format follows it
    assert dialog.format.currentText() == "qcow2" and dialog.problem.text() == ""
    dialog.mode.setCurrentText("read-only")
    assert dialog.choice() == MediumChoice(str(disk), "qcow2", "read-only")
    # an ISO is raw
    dialog.set_path(str(iso))
    assert dialog.choice() == MediumChoice(str(iso), "raw", "read-only")
    # a file that is not there says so, in the dialog
    dialog.set_path(str(tmp_path / "missing.iso"))
    assert "missing.iso" in dialog.problem.text()
    dialog.deleteLater()

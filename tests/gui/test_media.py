"""Removable media from the window, on a real qemu-system-x86_64 (q35, paused) with an ide-cd.

The drive's card is marked with its tray and medium (read with ``query-block``); its
context menu opens and closes the tray, inserts a medium (an ISO image, read-only),
changes it (read-only mode retained), ejects it, and undoes a change. After every step
the VM's own monitor is asked what the drive holds. A drive without a device id is
named by its QOM path, shortened to the part that tells devices apart.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF

from gui.widgets.media_dialog import MediumChoice
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter, run
from tests.gui.test_edits import idle
from tests.support.peer import Peer
from tests.support.qemu import connect_monitor

pytestmark = [pytest.mark.gui, pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]


class QemuVm(Peer):
    """qemu-system-x86_64 -M q35 -nodefaults -S with an empty ide-cd (id cd0), another
    without an id, and two QMP monitors: one for the window, one for the test."""

    kind = "qemu-system-x86_64"

    def _launch(self) -> socket.socket:
        for path in (self.session_socket, self.aux_socket):
            if os.path.exists(path):
                os.unlink(path)
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-M", "q35", "-nodefaults", "-S", "-display", "none",
             "-chardev", f"socket,path={self.aux_socket},server=on,wait=off,id=a0",
             "-mon", "chardev=a0,mode=control",
             "-chardev", f"socket,path={self.session_socket},server=on,wait=off,id=s0",
             "-mon", "chardev=s0,mode=control",
             "-device", "ide-cd,id=cd0,bus=ide.0", "-device", "ide-cd,bus=ide.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (os.path.exists(self.session_socket) and os.path.exists(self.aux_socket)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("qemu-system-x86_64 did not start")
            time.sleep(0.01)
        return connect_monitor(self.aux_socket, self.proc, deadline)


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[QemuVm]:
    (tmp_path / "vm").mkdir()
    machine = QemuVm(tmp_path / "vm")
    machine.start()
    yield machine
    machine.stop()


def cd0(vm: QemuVm) -> dict[str, Any]:
    return next(d for d in vm.ok("query-block") if d["qdev"] == "cd0")


def menu_action(window: MainWindow, key: str, text: str) -> Any:
    menu = window.build_context_menu(key, QPointF())
    found = [a for a in menu.actions() if a.text() == text]
    assert found, [a.text() for a in menu.actions()]
    return found[0]


def media_step(qtbot: Any, window: MainWindow, text: str, done: Any) -> None:
    menu_action(window, "backend:cd0", text).trigger()
    qtbot.waitUntil(lambda: idle(window) and bool(done()), timeout=15000)


def test_tray_and_media_of_an_ide_cd_from_its_card(
        qtbot: Any, aloop: Any, window: MainWindow, vm: QemuVm, tmp_path: Path) -> None:
    isos = {}
    for name, byte in (("install", 0x41), ("drivers", 0x42)):
        isos[name] = tmp_path / f"{name}.iso"
        isos[name].write_bytes(bytes([byte]) * (1 << 20))
    assert run(qtbot, aloop, window.open_remote(vm.address))
    qtbot.waitUntil(lambda: window.media.drive("backend:cd0") is not None, timeout=10000)
    drive = window.media.drive("backend:cd0")
    assert drive.removable and drive.tray_open is False and drive.medium is None
    assert [m.text for m in window.marks.marks("backend:cd0")] == ["tray closed · empty"]
    # the drive without an id: its QOM path, shortened, names it
    anonymous = [d for k, d in window.media.drives.items() if k != "backend:cd0"]
    assert len(anonymous) == 1 and anonymous[0].qdev.startswith("/machine/")
    assert anonymous[0].label == "peripheral-anon/device[0]"
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]

    # insert, read-only
    prompter.medium = MediumChoice(str(isos["install"]), "raw", "read-only")
    media_step(qtbot, window, "Insert medium…",
               lambda: "inserted" in cd0(vm) and window.media.drive("backend:cd0").medium)
    assert cd0(vm)["inserted"]["file"] == str(isos["install"])
    assert cd0(vm)["inserted"]["ro"] is True and cd0(vm)["tray_open"] is False
    qtbot.waitUntil(lambda: [m.text for m in window.marks.marks("backend:cd0")] == [
        "tray closed · install.iso (read-only)"], timeout=10000)
    assert ("medium", "cd0") in prompter.asked

    # open and close the tray
    media_step(qtbot, window, "Open tray", lambda: cd0(vm)["tray_open"]
               and window.media.drive("backend:cd0").tray_open)
    assert window.marks.marks("backend:cd0")[0].text.startswith("tray open")
    media_step(qtbot, window, "Close tray", lambda: not cd0(vm)["tray_open"]
               and window.media.drive("backend:cd0").tray_open is False)

    # change it, keeping read-only; then undo the change
    prompter.medium = MediumChoice(str(isos["drivers"]), "raw", "retain")
    media_step(qtbot, window, "Change medium…",
               lambda: cd0(vm).get("inserted", {}).get("file") == str(isos["drivers"])
               and window.media.drive("backend:cd0").medium == str(isos["drivers"]))
    assert cd0(vm)["inserted"]["ro"] is True
    review = prompter.reviews[-1]
    assert review.danger == ()          # changing a medium is what was asked for
    window.undo()
    qtbot.waitUntil(lambda: idle(window) and cd0(vm).get("inserted", {}).get("file")
                    == str(isos["install"]), timeout=15000)

    # eject: empty again
    media_step(qtbot, window, "Eject medium", lambda: "inserted" not in cd0(vm)
               and window.media.drive("backend:cd0").medium is None)
    qtbot.waitUntil(lambda: window.marks.marks("backend:cd0")[0].text.endswith("empty"),
                    timeout=10000)
    assert prompter.errors == []
    run(qtbot, aloop, window.close_session())


def test_a_drive_card_names_its_device_readably_clear_of_its_chip(
        qtbot: Any, aloop: Any, window: MainWindow, vm: QemuVm) -> None:
    """The anonymous drive's card shows its QOM path shortened, and a title never runs
    under the header's chip (it was elided to a fixed width that the chip overlapped)."""
    from gui.views.node_card import chip_width
    from gui.views.text import display_name, metrics

    assert run(qtbot, aloop, window.open_remote(vm.address))
    qtbot.waitUntil(lambda: len(window.media.drives) == 2, timeout=10000)
    (key,) = [k for k in window.media.drives if k != "backend:cd0"]
    card = window.scene.nodes[key]
    card._layout_text()
    assert display_name(card.info) == "peripheral-anon/device[0]"
    assert card._title == display_name(card.info) or (
        "…" in card._title and card._title.endswith("]"))
    room = card.width - 16 - chip_width(card.info)
    assert metrics("title").horizontalAdvance(card._title) <= room
    run(qtbot, aloop, window.close_session())

"""File → Open QEMU command line…: the window shows the graph a command line builds,
names the options it does not model, and refuses a line QEMU would refuse."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from gui.widgets.command_line import last_command_line
from gui.window.main_window import MainWindow
from tests.gui.conftest import run
from tests.support.qemu import create

pytestmark = [pytest.mark.gui, pytest.mark.qemu]


def _command_line(tmp_path: Path) -> str:
    base = create(tmp_path / "base.qcow2", "16M")
    top = create(tmp_path / "top.qcow2", "16M", backing=str(base), backing_fmt="qcow2")
    cd = create(tmp_path / "cd.iso", "1M", fmt="raw")
    return " \\\n".join([
        "LC_ALL=C", "/usr/bin/qemu-system-x86_64", "-machine pc-q35-7.2,usb=off",
        "-nodefaults", "-S",
        f"-drive file={shlex.quote(str(top))},format=qcow2,if=none,id=drive-vda,"
        "node-name=vda-top,backing.node-name=vda-base",
        "-device virtio-blk-pci,drive=drive-vda,id=virtio-disk0",
        "-blockdev " + shlex.quote(
            f'{{"driver":"file","filename":"{cd}","node-name":"cd-file","read-only":true}}'),
        "-blockdev " + shlex.quote(
            '{"driver":"raw","file":"cd-file","node-name":"cd-format","read-only":true}'),
        "-device " + shlex.quote('{"driver":"ide-cd","drive":"cd-format","id":"sata0-0-0"}'),
        "-netdev user,id=n0", "-device e1000,netdev=n0",
    ])


def test_command_line_opens_as_a_graph(window: MainWindow, qtbot: Any, aloop: Any,
                                       tmp_path: Path) -> None:
    log = "2026-01-01 00:00:00.000+0000: starting up libvirt version: 9.0.0\n" + \
        _command_line(tmp_path) + "\n2026-01-01 00:00:01.000+0000: shutting down\n"
    text = last_command_line(log)
    assert run(qtbot, aloop, window.connection.open_command_line(text))
    qtbot.waitUntil(lambda: window.scene.snapshot is not None
                    and "vda-base" in window.scene.snapshot.nodes, timeout=10000)
    snap = window.scene.snapshot
    assert snap.backing("vda-top") == "vda-base"
    assert snap.child("cd-format", "file") == "cd-file"
    assert any(k.startswith("backend:") and "drive-vda" in k for k in snap.nodes)
    assert window.unmodelled_options == ["-netdev user,id=n0", "-device e1000,netdev=n0"]
    assert window.unmodelled_label.text() == "2 options not modelled"
    assert "-device e1000,netdev=n0" in window.unmodelled_label.toolTip()


def test_a_refused_command_line_says_why(window: MainWindow, qtbot: Any, aloop: Any) -> None:
    assert not run(qtbot, aloop, window.connection.open_command_line(
        "qemu-system-x86_64 -drive bogus=1"))
    assert window.prompter.errors[-1] == (
        "Cannot open the QEMU command line",
        "qemu-system-x86_64: -drive bogus=1: Must specify either driver or file")

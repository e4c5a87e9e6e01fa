"""Screenshots of what the window says about an edit, a job and a drive, from the real window.

    scripts/virtual-screen .venv/bin/python resources/screenshots/make_truth.py

Needs qemu-storage-daemon and qemu-system-x86_64 (the failed job and the drive are real
QEMU's). Saves:

* ``review.png`` — the review of re-pointing vm1-top from vm1-mid to base under the
  attached disk vm1 (the bundled engine has no run state to tell): the warning, the
  bytes it will read from other layers and the QMP;
* ``staging.png`` — three staged link edits drawn as ghost links, listed in the Staged
  edits dock;
* ``failed-job.png`` — a stream whose backing image fails to read (``blkdebug``): red
  in the jobs dock with QEMU's error, and marked on the node it streamed into;
* ``media.png`` — a paused q35 VM's CD-ROM drive after a medium change: its card marked
  with tray and medium, and its context menu with the tray and medium entries.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qasync  # after PySide6
from PySide6.QtCore import QPoint, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMenu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from gui.planner.intents import SetBacking, Stream  # noqa: E402
from gui.widgets.dialogs import DialogPrompter, JobChoice  # noqa: E402
from gui.widgets.media_dialog import MediumChoice  # noqa: E402
from gui.widgets.plan_review import PlanReviewDialog, Review  # noqa: E402
from gui.window.main_window import MainWindow  # noqa: E402
from tests.support.qemu import create, qemu_io  # noqa: E402


class Answers(DialogPrompter):
    """Says yes to everything, shows no modal dialog (errors go to the status bar)."""

    medium: MediumChoice | None = None

    def review(self, review: Review) -> bool:
        return True

    def confirm(self, title: str, text: str) -> bool:
        return True

    def choose_job(self, title: str, label: str, options: list[str], default: int = 0
                   ) -> JobChoice | None:
        return JobChoice(options[default], 0)

    def ask_medium(self, drive: str, current: str | None) -> MediumChoice | None:
        return self.medium

    def error(self, title: str, text: str) -> None:
        pass


async def until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.05)


def save(widget: Any, name: str) -> None:
    QApplication.processEvents()
    widget.grab().save(str(HERE / name))
    print("wrote", HERE / name)


def daemon(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def wait_socket(path: Path) -> None:
    await until(path.exists, 20)


async def review_and_staging(window: MainWindow, scratch: Path) -> None:
    await window.open_bundled(scratch / "demo")
    await until(lambda: "vm3-top" in window.scene.nodes)
    window.relayout()
    window.view.fit()
    plan = window.edits.plan(SetBacking("vm1-top", "base"))
    assert plan is not None
    review = await window.edits.review_of(plan)
    dialog = PlanReviewDialog(review, window)
    dialog.resize(720, 640)
    dialog.show()
    await asyncio.sleep(0.4)
    save(dialog, "review.png")
    dialog.close()

    window.act_stage.setChecked(True)
    for intent in (SetBacking("vm2-top", "vm1-mid"), SetBacking("vm3-top", "vm1-mid"),
                   SetBacking("spare", "base")):
        window.editing.request(intent)
    await until(lambda: len(window.staging.items) == 3)
    window.scene.select([])
    window.view.fit()
    await asyncio.sleep(0.5)
    save(window, "staging.png")
    window.staging.clear()
    window.act_stage.setChecked(False)
    await window.close_session()


async def failed_job(window: MainWindow, scratch: Path) -> None:
    images = scratch / "images"
    images.mkdir()
    create(images / "base.qcow2", "64M")
    qemu_io(images / "base.qcow2", "write -P 0x11 0 8M")
    create(images / "vm-disk.qcow2", "64M", backing="base.qcow2", backing_fmt="qcow2")
    sock = scratch / "qsd.sock"
    proc = daemon("qemu-storage-daemon", "--chardev",
                  f"socket,path={sock},server=on,wait=off,id=c0", "--monitor", "chardev=c0")
    try:
        await wait_socket(sock)
        await window.open_remote(f"unix:{sock}")
        session = window.bridge.session
        await session.execute("blockdev-add", {
            "driver": "qcow2", "node-name": "base", "read-only": True,
            "file": {"driver": "blkdebug", "node-name": "base-faulty",
                     "inject-error": [{"event": "read_aio", "errno": 5}],
                     "image": {"driver": "file", "node-name": "base-file",
                               "filename": str(images / "base.qcow2")}}})
        await session.execute("blockdev-add", {
            "driver": "qcow2", "node-name": "vm-disk", "backing": "base",
            "file": {"driver": "file", "node-name": "vm-disk-file",
                     "filename": str(images / "vm-disk.qcow2")}})
        await session.refresh(force=True)
        await until(lambda: "vm-disk" in window.scene.nodes)
        window.relayout()
        window.editing.request(Stream("vm-disk"))
        await until(lambda: window.jobs.state("stream-vm-disk") == "failed")
        await until(lambda: not window.edits.running)
        window.docks["jobs"].raise_()
        window.view.fit()
        window.scene.select([])
        await asyncio.sleep(0.6)
        save(window, "failed-job.png")
        await window.close_session()
    finally:
        proc.terminate()
        proc.wait()


async def media(window: MainWindow, scratch: Path) -> None:
    iso = scratch / "install.iso"
    iso.write_bytes(b"\x41" * (4 << 20))
    sock = scratch / "vm.sock"
    proc = daemon("qemu-system-x86_64", "-M", "q35", "-nodefaults", "-S", "-display", "none",
                  "-name", "guest=web01", "-qmp", f"unix:{sock},server=on,wait=off",
                  "-blockdev", f"driver=qcow2,node-name=web01-disk,file.driver=file,"
                  f"file.filename={scratch / 'images' / 'vm-disk.qcow2'}",
                  "-device", "ide-hd,drive=web01-disk,id=disk0,bus=ide.0",
                  "-device", "ide-cd,id=cd0,bus=ide.1")
    try:
        await wait_socket(sock)
        await window.open_remote(f"unix:{sock}")
        await until(lambda: window.media.drive("backend:cd0") is not None)
        prompter = window.edits.prompter
        assert isinstance(prompter, Answers)
        prompter.medium = MediumChoice(str(iso), "raw", "read-only")
        window.editing.media_request("backend:cd0", "insert")
        await until(lambda: (window.media.drive("backend:cd0") or Any).medium is not None)
        window.relayout()
        window.view.fit()
        window.scene.select(["backend:cd0"])
        await asyncio.sleep(0.5)
        card = window.scene.nodes["backend:cd0"]
        rect = card.scene_rect()
        where = window.view.viewport().mapToGlobal(
            window.view.mapFromScene(rect.topRight()))
        menu: QMenu = window.build_context_menu("backend:cd0", rect.center())
        menu.popup(where + QPoint(40, 0))
        await asyncio.sleep(0.6)
        QApplication.processEvents()
        screen = QGuiApplication.primaryScreen()
        geo = window.frameGeometry()
        shot = screen.grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height())
        shot.save(str(HERE / "media.png"))
        print("wrote", HERE / "media.png")
        menu.close()
        await window.close_session()
    finally:
        proc.terminate()
        proc.wait()


async def shoot(window: MainWindow, scratch: Path) -> None:
    await review_and_staging(window, scratch)
    await failed_job(window, scratch)
    await media(window, scratch)


def main() -> int:
    os.environ.setdefault("QT_API", "pyside6")
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d)
        settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
        prompter = Answers(None, preview_enabled=False)  # type: ignore[arg-type]
        window = MainWindow(settings, prompter=prompter, scheme="light")
        prompter.parent = window
        window.resize(1500, 940)
        window.move(0, 0)
        window.show()
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(shoot(window, scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Take the README's screenshots of the tour window and the offline window.

Run under a virtual X screen so fonts render as on a desktop::

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshots.py

Writes ``resources/screenshots/tour.png`` and ``resources/screenshots/offline.png``.
The offline example builds a chain in a temporary directory and deletes the middle
image's backing file, so the broken link and its fixes show.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import PySide6  # noqa: E402,F401  - before qasync
import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.formats import create_qcow2, open_image  # noqa: E402

OUT = REPO / "resources" / "screenshots"
MIB = 1 << 20


async def _settle(panel) -> None:  # type: ignore[no-untyped-def]
    await asyncio.sleep(0.05)
    while panel.busy:
        await asyncio.sleep(0.05)


async def tour_shot(app: QApplication) -> None:
    from gui.tours.window import TourWindow

    window = TourWindow("reopen-backing")
    window.resize(1320, 780)
    window.show()
    panel = window.panel
    panel.start()
    await _settle(panel)
    for _ in range(5):
        panel._on_next()
        await _settle(panel)
    await asyncio.sleep(0.3)
    app.processEvents()
    window.grab().save(str(OUT / "tour.png"))
    await panel.shutdown()
    window.close()


def offline_shot(app: QApplication) -> None:
    from gui.offline.window import OfflineWindow

    d = Path(tempfile.mkdtemp(prefix="blockgraph-shot-"))
    create_qcow2(d / "base.qcow2", 64 * MIB)
    create_qcow2(d / "mid.qcow2", 64 * MIB, backing_file="base.qcow2")
    create_qcow2(d / "vm-disk.qcow2", 64 * MIB, backing_file="mid.qcow2")
    create_qcow2(d / "golden.qcow2", 64 * MIB)
    create_qcow2(d / "clone.qcow2", 64 * MIB, backing_file="golden.qcow2")
    create_qcow2(d / "clone-2.qcow2", 64 * MIB, backing_file="golden.qcow2")
    for name, off, n, pattern in (("base", 0, 24, 0xAA), ("mid", 20, 12, 0xBB),
                                  ("vm-disk", 40, 6, 0xCC), ("golden", 0, 40, 0x11),
                                  ("clone", 8, 4, 0x22)):
        with open_image(d / f"{name}.qcow2", writable=True) as img:
            img.write(off * MIB, bytes([pattern]) * (n * MIB))
    with open_image(d / "mid.qcow2", writable=True) as img:
        img.write_zeroes(32 * MIB, 4 * MIB)
    (d / "base.qcow2").unlink()                      # the broken link: mid -> base.qcow2
    window = OfflineWindow([str(d / "vm-disk.qcow2"), str(d / "clone.qcow2"),
                            str(d / "clone-2.qcow2")], confirm=lambda t, x: True)
    window.resize(1320, 780)
    window.show()
    window.run_stream(str(d / "clone-2.qcow2"))     # an edit, to show its qemu-img line
    window.select(str(d / "vm-disk.qcow2"))
    for _ in range(10):
        app.processEvents()
    window.grab().save(str(OUT / "offline.png"))
    window.close()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(tour_shot(app))
    offline_shot(app)
    print(f"wrote {OUT / 'tour.png'} and {OUT / 'offline.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Take the README's screenshot of the VMs window on a host with several libvirt domains.

    scripts/virtual-screen .venv/bin/python resources/screenshots/libvirt_vms.py

Starts a private libvirtd (as the tests do: root, its own namespaces), defines and starts
four TCG domains — ``web`` (a disk over a base, a CD-ROM), ``db`` (two external
snapshots, made through libvirt), ``build`` (an active commit waiting, ready, for its
pivot) and ``backup`` (paused) — and a fifth, ``old-vm``, defined but shut off. Opens
the VMs window on the connection exactly as ``blockgraph --connect URI`` does, waits
until every running domain's graph is drawn, saves ``libvirt-vms.png`` and tears it all
down (the daemon's namespace ends every QEMU with it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import PySide6  # noqa: E402,F401  - before qasync
import qasync  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.libvirt.host import domain_address  # noqa: E402
from gui.vms.window import VmsWindow  # noqa: E402
from tests.support.libvirtd import LibvirtDaemon, domain_xml  # noqa: E402
from tests.support.qemu import create, qemu_io  # noqa: E402

OUT = HERE / "libvirt-vms.png"


def define(daemon: LibvirtDaemon, name: str, directory: Path, *, start: bool = True) -> Path:
    directory.mkdir(parents=True)
    base = create(directory / f"{name}-base.qcow2", "64M")
    qemu_io(base, "write -P 0x11 0 1M")
    top = create(directory / f"{name}.qcow2", "64M", backing=str(base))
    cd = create(directory / "install.iso", "1M", fmt="raw")
    xml = directory / "domain.xml"
    xml.write_text(domain_xml(name, top, cd))
    daemon.virsh("define", str(xml))
    if start:
        daemon.virsh("start", name)
    return directory


def build_host(daemon: LibvirtDaemon, root: Path) -> None:
    define(daemon, "web", root / "web")
    db = define(daemon, "db", root / "db")
    for snap in ("db-monday", "db-tuesday"):
        daemon.virsh("snapshot-create-as", "db", snap, "--disk-only", "--atomic",
                     "--diskspec", f"vda,snapshot=external,file={db / snap}.qcow2",
                     "--diskspec", "sda,snapshot=no")
    build = define(daemon, "build", root / "build")
    daemon.virsh("snapshot-create-as", "build", "build-ci", "--disk-only", "--atomic",
                 "--diskspec", f"vda,snapshot=external,file={build}/build-ci.qcow2",
                 "--diskspec", "sda,snapshot=no")
    daemon.virsh("blockcommit", "build", "vda", "--active", "--shallow", "--wait")
    define(daemon, "backup", root / "backup")
    daemon.virsh("suspend", "backup")
    define(daemon, "old-vm", root / "old-vm", start=False)


async def shoot(app: QApplication, uri: str, settings: Path) -> None:
    window = VmsWindow(QSettings(str(settings), QSettings.Format.IniFormat))
    window.resize(1560, 940)
    window.show()
    try:
        if not await window.open_address(uri):
            raise SystemExit(f"cannot open {uri}: {window.errors}")
        running = [domain_address(uri, n) for n in ("web", "db", "build", "backup")]
        async with asyncio.timeout(120):
            while not all(window.frames.frames.get(a) is not None
                          and window.frames.frames[a].snapshot is not None for a in running) \
                    or "ready" not in window.vm_list.status(domain_address(uri, "build")):
                await asyncio.sleep(0.1)
        window.vm_list.setCurrentItem(window.vm_list.rows[domain_address(uri, "build")])
        await asyncio.sleep(0.3)          # let the frames settle into their final size
        app.processEvents()
        window.grab().save(str(OUT))
        print(f"wrote {OUT}")
    finally:
        await window.close_connections()
        window.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="blockgraph-vms-") as tmp:
        root = Path(tmp)
        daemon = LibvirtDaemon(root / "libvirtd")
        daemon.start()
        try:
            build_host(daemon, root / "images")
            app = QApplication.instance() or QApplication([sys.argv[0]])
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            with loop:
                loop.run_until_complete(shoot(app, daemon.uri, root / "settings.ini"))
        finally:
            daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

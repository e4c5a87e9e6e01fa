"""The demo disk chains the editor opens with: several VMs over one shared base.

Images are written with :mod:`engine.formats` (no qemu-img needed) into a per-user
scratch directory, then opened on the peer as any other edit: one
:class:`~gui.planner.intents.AddImage` intent per layer, planned, preflighted and run
by the :class:`~gui.executor.PlanExecutor` (plain ``blockdev-add`` commands you can
read in the QMP log), each backed by the layer below by name. On a peer that can add
VM drives (the bundled engine's ``x-blockgraph-device-add``, which the planner does not
offer: it is no edit of a real QEMU's graph) each VM also gets its drive, so block
backends appear above their chains.

::

    base.qcow2  <-  vm1-mid.qcow2  <-  vm1-top.qcow2   (drive vm1)
                <-  vm2-top.qcow2                      (drive vm2)
                <-  vm3-top.qcow2                      (drive vm3)
    spare.qcow2                                        (no backing)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.formats import create_qcow2, open_image
from gui.executor import PlanExecutor
from gui.planner.intents import AddImage
from gui.session import Session

MiB = 1 << 20
SIZE = 64 * MiB

#: (node name, backing node, read-only, VM drive id)
CHAIN: tuple[tuple[str, str | None, bool, str | None], ...] = (
    ("base", None, True, None),
    ("vm1-mid", "base", True, None),
    ("vm1-top", "vm1-mid", False, "vm1"),
    ("vm2-top", "base", False, "vm2"),
    ("vm3-top", "base", False, "vm3"),
    ("spare", None, False, None),
)

#: data each layer holds: (offset, length, fill byte) — so stream/commit move real data
DATA: dict[str, tuple[tuple[int, int, int], ...]] = {
    "base": ((0, 2 * MiB, 0x11), (16 * MiB, 1 * MiB, 0x12), (40 * MiB, 3 * MiB, 0x13)),
    "vm1-mid": ((1 * MiB, 1 * MiB, 0x21), (20 * MiB, 512 * 1024, 0x22)),
    "vm1-top": ((0, 256 * 1024, 0x31),),
    "vm2-top": ((2 * MiB, 768 * 1024, 0x41),),
    "vm3-top": ((48 * MiB, 1 * MiB, 0x51),),
    "spare": ((0, 512 * 1024, 0x61),),
}


def scratch_dir() -> Path:
    """A per-user directory for the demo images (XDG cache, else the temp dir)."""
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache:
        return Path(cache) / "blockgraph" / "demo"
    home = Path.home()
    if home.is_dir() and os.access(home, os.W_OK):
        return home / ".cache" / "blockgraph" / "demo"
    return Path(tempfile.gettempdir()) / f"blockgraph-demo-{os.getuid()}"


def create_images(directory: Path) -> dict[str, Path]:
    """(Re)create the demo images in ``directory``; returns node name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.qcow2" for name, *_ in CHAIN}
    for name, backing, _ro, _vm in CHAIN:
        create_qcow2(paths[name], SIZE,
                     backing_file=paths[backing].name if backing else None,
                     backing_format="qcow2" if backing else None)
        img = open_image(paths[name], "qcow2", writable=True)
        try:
            for offset, length, byte in DATA.get(name, ()):
                img.write(offset, bytes([byte]) * length)
            img.flush()
        finally:
            img.close()
    return paths


def open_layer(name: str, path: Path, backing: str | None, read_only: bool) -> AddImage:
    """The intent that opens one demo layer by name, backed by the layer below by name."""
    # the file child inherits read-only, so a job can later reopen the layer read-write
    return AddImage(name, str(path), "qcow2", with_chain=False, read_only=read_only,
                    file_node=f"{name}-file", backing=backing)


async def build_demo(session: Session, directory: Path | None = None) -> dict[str, Path]:
    """Create the images and open them on ``session``'s peer (bottom first)."""
    directory = directory or scratch_dir()
    paths = create_images(directory)
    executor = PlanExecutor(session)
    for name, backing, ro, _vm in CHAIN:   # a refused layer raises PreflightRefused
        await executor.run(executor.plan(open_layer(name, paths[name], backing, ro)))
    caps = session.capabilities
    if caps is not None and "x-blockgraph-device-add" in caps.commands:
        for name, _backing, _ro, vm in CHAIN:
            if vm:
                await session.execute("x-blockgraph-device-add", {"id": vm, "node-name": name})
    await session.refresh(force=True)
    return paths

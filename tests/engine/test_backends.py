"""Block backends (VM drives) and media commands, against qemu-system-x86_64 7.2."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.qmp import Engine, QMPError
from tests.support.differential import EnginePeer, QemuSystemPeer, Step, run_scenario
from tests.support.qemu import create

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]


def images(d: Path) -> None:
    for name in ("cd", "cd2", "disk"):
        create(d / f"{name}.qcow2", "1M")


def engine_with_cdrom(d: Path) -> Any:
    eng = Engine()
    eng.add_backend("cd0", removable=True)
    return EnginePeer(eng)


def qemu_with_cdrom(d: Path) -> Any:
    return QemuSystemPeer(d, "-device", "ide-cd,id=cd0")


M1 = {"driver": "qcow2", "node-name": "m1", "read-only": True,
      "file": {"driver": "file", "filename": "{dir}/cd.qcow2"}}


def test_media_commands_match_qemu(tmp_path: Path) -> None:
    results = run_scenario(tmp_path, images, [
        Step("query-block", {}, compare_return=True),
        Step("blockdev-add", M1),
        Step("blockdev-insert-medium", {"id": "cd0", "node-name": "m1"}, compare_return=True),
        Step("blockdev-open-tray", {"id": "cd0"}, compare_return=True),
        Step("blockdev-open-tray", {"id": "cd0"}, compare_return=True),
        Step("blockdev-insert-medium", {"id": "cd0", "node-name": "m1"}, compare_return=True),
        Step("blockdev-insert-medium", {"id": "cd0", "node-name": "m1"}, compare_return=True),
        Step("blockdev-close-tray", {"id": "cd0"}, compare_return=True),
        Step("query-block", {}, compare_return=True),
        Step("blockdev-del", {"node-name": "m1"}, compare_return=True),
        Step("blockdev-remove-medium", {"id": "cd0"}, compare_return=True),
        Step("eject", {"id": "cd0"}, compare_return=True),
        Step("query-block", {}, compare_return=True),
        Step("blockdev-del", {"node-name": "m1"}, compare_return=True),
        Step("blockdev-change-medium", {"id": "cd0", "filename": "{dir}/cd2.qcow2",
                                        "format": "qcow2"}),
        Step("query-block", {}, compare_return=True),
        Step("blockdev-change-medium", {"id": "cd0", "filename": "{dir}/nonexist.qcow2",
                                        "format": "qcow2"}),
        Step("blockdev-open-tray", {"id": "nonexist"}, compare_return=True),
        Step("blockdev-open-tray", {"device": "nonexist"}, compare_return=True),
        Step("blockdev-open-tray", {}, compare_return=True),
        Step("eject", {"id": "cd0", "force": True}, compare_return=True),
        Step("blockdev-change-medium", {"id": "cd0", "filename": "{dir}/cd.qcow2"},
             compare_return=True),
        Step("query-block", {}, compare_return=True),
    ], peers=[("qemu-system", qemu_with_cdrom), ("engine", engine_with_cdrom)])
    assert len(results) == 23


def test_a_medium_an_overlay_uses_is_not_taken_out(tmp_path: Path) -> None:
    """Removing, ejecting or changing a medium that is another node's backing is
    refused as QEMU refuses it (the operation blocker of the backing link), the same
    rule the editor's preflight applies."""
    overlay = {"driver": "qcow2", "node-name": "ov", "backing": "m1",
               "file": {"driver": "file", "filename": "{dir}/disk.qcow2"}}
    results = run_scenario(tmp_path, images, [
        Step("blockdev-add", M1),
        Step("blockdev-open-tray", {"id": "cd0"}),
        Step("blockdev-insert-medium", {"id": "cd0", "node-name": "m1"}),
        Step("blockdev-add", overlay),
        Step("blockdev-remove-medium", {"id": "cd0"}),
        Step("blockdev-close-tray", {"id": "cd0"}),
        Step("eject", {"id": "cd0"}),
        Step("blockdev-change-medium", {"id": "cd0", "filename": "{dir}/cd2.qcow2",
                                        "format": "qcow2"}),
        Step("query-block", {}, compare_return=True),
        Step("blockdev-del", {"node-name": "ov"}),
        Step("eject", {"id": "cd0"}),
        Step("query-block", {}, compare_return=True),
    ], peers=[("qemu-system", qemu_with_cdrom), ("engine", engine_with_cdrom)])
    refused = [r for r in results if "error" in r.replies[0]]
    assert len(refused) == 3


def test_tray_events_and_disk_backend(tmp_path: Path) -> None:
    create(tmp_path / "disk.qcow2", "1M")
    eng = Engine()
    events: list[dict] = []
    eng.add_listener(events.append)
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "disk0", "file": {
        "driver": "file", "filename": str(tmp_path / "disk.qcow2")}})
    eng.add_backend("vd0", "disk0")
    eng.add_backend("cd0", removable=True)
    with pytest.raises(QMPError, match="Node disk0 is in use"):
        eng.execute("blockdev-del", {"node-name": "disk0"})
    with pytest.raises(QMPError, match="Device 'vd0' is not removable"):
        eng.execute("eject", {"id": "vd0"})
    eng.execute("blockdev-open-tray", {"id": "cd0"})
    eng.execute("blockdev-close-tray", {"id": "cd0"})
    assert [(e["event"], e["data"]["tray-open"]) for e in events] == [
        ("DEVICE_TRAY_MOVED", True), ("DEVICE_TRAY_MOVED", False)]
    graph = eng.execute("x-debug-query-block-graph")
    names = {n["name"]: n["type"] for n in graph["nodes"]}
    assert names["vd0"] == "block-backend" and names["cd0"] == "block-backend"
    root = [e for e in graph["edges"] if e["name"] == "root"]
    assert root and root[0]["perm"] == ["write", "consistent-read"]
    assert root[0]["shared-perm"] == ["resize", "write-unchanged", "consistent-read"]
    snap = eng.graph.snapshot()
    assert snap.child("backend:vd0", "root") == "disk0"
    eng.add_backend("hd0", drive="drive0")
    with pytest.raises(QMPError, match="node-name=drive0 is conflicting with a device id"):
        eng.execute("blockdev-add", {"driver": "null-co", "node-name": "drive0"})
    eng.execute("blockdev-add", {"driver": "null-co", "node-name": "vd0"})  # ids may clash
    eng.close()


def test_snapshot_moves_the_drive_to_the_overlay(tmp_path: Path) -> None:
    disk = {"driver": "qcow2", "node-name": "disk0",
            "file": {"driver": "file", "filename": "{dir}/disk.qcow2"}}

    def qemu(d: Path) -> Any:
        return QemuSystemPeer(d, "-blockdev", f"driver=qcow2,node-name=disk0,file.driver=file,"
                              f"file.filename={d}/disk.qcow2", "-device",
                              "ide-hd,drive=disk0,id=hd0")

    def engine(d: Path) -> Any:
        from tests.support.differential import substitute

        eng = Engine()
        eng.execute("blockdev-add", substitute(disk, d))
        eng.add_backend("hd0", "disk0")
        return EnginePeer(eng)

    run_scenario(tmp_path, images, [
        Step("query-block", {}, compare_return=True),
        Step("blockdev-del", {"node-name": "disk0"}),
        Step("blockdev-snapshot-sync", {"node-name": "disk0", "snapshot-node-name": "snap0",
                                        "snapshot-file": "{dir}/snap.qcow2"}),
        # the overlay file is written by each peer's own image code: host allocation
        # (actual-size) differs, so compare the graph, not the reply
        Step("query-block", {}),
        Step("blockdev-del", {"node-name": "snap0"}),
        Step("eject", {"id": "hd0"}),
    ], peers=[("qemu-system", qemu), ("engine", engine)])

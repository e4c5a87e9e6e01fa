"""The real-QEMU test support works on this machine (CI installs QEMU; never skipped)."""

from __future__ import annotations

from pathlib import Path

from tests.support import qemu


def test_qemu_img_and_daemon_are_usable(tmp_path: Path, qsd: qemu.QemuStorageDaemon) -> None:
    img = qemu.create(tmp_path / "a.qcow2", "1M")
    qemu.check(img)
    reply = qsd.execute("blockdev-add", {"driver": "file", "filename": str(img),
                                         "node-name": "f"})
    assert reply == {"return": {}}
    nodes = qsd.execute("query-named-block-nodes", {"flat": True})["return"]
    assert [n["node-name"] for n in nodes] == ["f"]
    assert qsd.execute("nope")["error"]["class"] == "CommandNotFound"

"""The command line libvirt wrote for a domain (a qcow2 chain on virtio, a CD-ROM on
SATA), opened on the bundled engine, shows the nodes QEMU built from it.

QEMU's own ``query-named-block-nodes`` is read from the running domain first; then the
domain is stopped (its images unlocked) and the command line from libvirt's log is
opened as the editor opens it (:func:`engine.launcher.opened.open_command_line`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.launcher.opened import open_command_line
from gui.widgets.command_line import last_command_line
from tests.libvirt.conftest import Domain

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

#: what a node shows that a command line decides (host figures such as actual-size left out)
FIELDS = ("node-name", "drv", "ro", "file", "backing_file", "backing_file_depth", "cache",
          "detect_zeroes", "encrypted")


def _view(node: dict[str, Any]) -> dict[str, Any]:
    view = {k: node.get(k) for k in FIELDS}
    image = node["image"]
    view["virtual-size"] = image["virtual-size"]
    view["format"] = image["format"]
    view["backing-filename"] = image.get("backing-filename")
    return view


def _drives(blocks: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(b["device"], b["qdev"], b["removable"],
             b.get("inserted", {}).get("node-name")) for b in blocks}


def _qmp(domain: Domain, command: str) -> Any:
    reply = domain.virsh("qemu-monitor-command", domain.name, json.dumps({"execute": command}))
    return json.loads(reply)["return"]


def test_libvirt_command_line_shows_qemus_nodes(domain: Domain) -> None:
    qemu_nodes = {n["node-name"]: _view(n) for n in _qmp(domain, "query-named-block-nodes")}
    qemu_drives = _drives(_qmp(domain, "query-block"))
    log = domain.daemon.base / "log" / "qemu" / f"{domain.name}.log"
    text = last_command_line(log.read_text(encoding="utf-8", errors="replace"))
    assert "-blockdev" in text and "ide-cd" in text, text
    domain.virsh("destroy", domain.name)      # QEMU lets go of the images' locks

    opened = open_command_line(text)
    try:
        ours = {n["node-name"]: _view(n)
                for n in opened.machine.execute("query-named-block-nodes")}
        assert ours == qemu_nodes
        assert _drives(opened.machine.execute("query-block")) == qemu_drives
        # everything block-related was modelled; what was not is named, as written
        assert not [o for o in opened.unmodelled() if o.startswith(("-blockdev", "-drive"))]
        print("not modelled:", opened.unmodelled())
    finally:
        opened.machine.close()

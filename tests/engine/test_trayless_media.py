"""A floppy drive: removable media without a tray, against qemu-system-x86_64 7.2.

Its medium is taken out and put in with no tray to open (``query-block`` shows no
``tray_open``, the tray commands succeed and change nothing, no tray event is sent),
and a medium opened read-only stays read-only in it. Replies (values included, host
figures aside), graphs and events are compared step by step.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.cmdline_peers import EventPeer, engine_peer, qemu_system_peer
from tests.support.differential import (
    Step,
    run_scenario,
    unsubstitute,
    without_host_figures,
)
from tests.support.qemu import create

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]


def images(d: Path) -> None:
    create(d / "old.qcow2", "1440k")
    create(d / "new.qcow2", "1440k")


def floppy(d: Path) -> list[str]:
    return ["-device", "isa-fdc",
            "-drive", f"if=none,id=drive0,file={d}/old.qcow2,format=qcow2,media=disk",
            "-device", "floppy,drive=drive0,id=qdev0"]


AUTO_NAME = re.compile(r"#block\d+")
NEW = {"node-name": "new", "driver": "qcow2", "read-only": True,
       "file": {"driver": "file", "filename": "{dir}/new.qcow2"}}


def test_a_floppys_medium_goes_out_and_in_without_a_tray(tmp_path: Path) -> None:
    peers: dict[str, EventPeer] = {}

    def keep(name: str, factory: Any) -> Any:
        def make(d: Path) -> EventPeer:
            peers[name] = factory(d)
            return peers[name]
        return make

    results = run_scenario(tmp_path, images, [
        Step("query-block", {}),
        Step("blockdev-add", NEW, expect="ok"),
        Step("blockdev-remove-medium", {"id": "qdev0"}, expect="ok"),
        Step("query-block", {}),
        Step("blockdev-open-tray", {"id": "qdev0"}, expect="ok"),
        Step("blockdev-insert-medium", {"id": "qdev0", "node-name": "new"}, expect="ok"),
        Step("blockdev-close-tray", {"id": "qdev0"}, expect="ok"),
        Step("query-block", {}),
        Step("eject", {"id": "qdev0"}, expect="ok"),
        Step("query-block", {}),
        Step("blockdev-change-medium", {"id": "qdev0", "filename": "{dir}/old.qcow2",
                                        "format": "qcow2"}, expect="ok"),
        Step("query-block", {}),
    ], peers=[("qemu-system", keep("qemu-system", qemu_system_peer(floppy))),
              ("engine", keep("engine", engine_peer(floppy)))])
    dirs = [tmp_path / "qemu-system", tmp_path / "engine"]
    for result in results:
        shown = [AUTO_NAME.sub("#block?", json.dumps(without_host_figures(
                     unsubstitute(reply.get("return"), d))))
                 for reply, d in zip(result.replies, dirs, strict=True)]
        assert shown[0] == shown[1], f"{result.step.command}:\n" + "\n".join(shown)
    assert "tray_open" not in results[0].replies[1]["return"][0]
    assert results[7].replies[1]["return"][0]["inserted"]["ro"] is True
    events = {name: [e["event"] for e in p.events] for name, p in peers.items()}
    assert events["engine"] == events["qemu-system"] == []

"""Iothreads and the links that join parts of the graph, against qemu-system-x86_64 7.2.

Two disks, each on a SCSI controller of its own. Linking one as the other's backing
(``blockdev-reopen``) joins their parts of the graph, which must then run in one
iothread: one part moves into the other's, unless both are pinned by a guest device
in different iothreads — then QEMU refuses (``Cannot change iothread of active
block backend``). Removing the link again always works. Replies and graphs are
compared step by step, for each arrangement QEMU's reopen test uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.jobs.cmdline_peers import engine_peer, qemu_system_peer
from tests.support.differential import Step, run_scenario
from tests.support.qemu import create

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]


def images(d: Path) -> None:
    create(d / "hd0.qcow2", "1M")
    create(d / "hd2.qcow2", "1M")


def machine(iothread_a: str, iothread_b: str):  # type: ignore[no-untyped-def]
    def words(d: Path) -> list[str]:
        out = ["-object", "iothread,id=iothread0", "-object", "iothread,id=iothread1"]
        for name in ("hd0", "hd2"):
            out += ["-blockdev", f"driver=qcow2,node-name={name},file.driver=file,"
                                 f"file.filename={d}/{name}.qcow2"]
        for i, iothread in enumerate((iothread_a, iothread_b)):
            out += ["-device", f"virtio-scsi,id=scsi{i}"
                               + (f",iothread={iothread}" if iothread else "")]
        return out
    return words


def hd(name: str) -> dict[str, object]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": f"{{dir}}/{name}.qcow2"}}


@pytest.mark.parametrize(("iothread_a", "iothread_b", "outcome"), [
    ("iothread0", "iothread1", "error"),    # both pinned, in different iothreads
    ("iothread0", "iothread0", "ok"),
    ("iothread0", "", "ok"),                # hd2 has no device: it moves
    ("", "iothread0", "ok"),                # hd0 has no device: it moves
])
def test_linking_parts_in_different_iothreads(tmp_path: Path, iothread_a: str,
                                              iothread_b: str, outcome: str) -> None:
    steps = []
    for name, bus, iothread in (("hd0", "scsi0.0", iothread_a), ("hd2", "scsi1.0", iothread_b)):
        if iothread:
            steps.append(Step("device_add", {"driver": "scsi-hd", "drive": name,
                                             "share-rw": True, "bus": bus}, expect="ok"))
    results = run_scenario(tmp_path, images, [
        *steps,
        Step("blockdev-reopen", {"options": [{**hd("hd0"), "backing": "hd2"}]},
             expect=outcome),
        Step("blockdev-reopen", {"options": [{**hd("hd0"), "backing": None}]}, expect="ok"),
    ], peers=[("qemu-system", qemu_system_peer(machine(iothread_a, iothread_b))),
              ("engine", engine_peer(machine(iothread_a, iothread_b)))])
    if outcome == "error":
        assert results[-2].replies[1]["error"]["desc"] == \
            "Cannot change iothread of active block backend"

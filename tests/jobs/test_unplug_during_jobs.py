"""Unplugging a device whose drive a job works on, against qemu-system-x86_64 7.2.

A ``-drive`` goes away with its device; before it does, QEMU cancels every block
job that holds the drive's node (softly: the job ends on its own, with
``BLOCK_JOB_CANCELLED``). A job on other nodes of the chain, and a drive made with
``-blockdev``, keep their jobs. Replies, graphs and the events are compared, and
the images after both peers are gone (the guest's view through each layer above
the base; how much a cancelled commit had written into the base is timing).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.cmdline_peers import EventPeer, engine_peer, qemu_system_peer, until
from tests.jobs.jobdiff import event_sequence
from tests.support.differential import Step, run_scenario
from tests.support.qemu import check, compare, create, qemu_io

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]

IMAGES = ("base.qcow2", "mid.qcow2", "top.qcow2")


def chain(d: Path) -> None:
    create(d / "base.qcow2", "2M")
    qemu_io(d / "base.qcow2", "write -P 0xab 0 512k")
    create(d / "mid.qcow2", "2M", backing=str(d / "base.qcow2"))
    qemu_io(d / "mid.qcow2", "write -P 0xef 512k 1M")
    create(d / "top.qcow2", "2M", backing=str(d / "mid.qcow2"))


def legacy_drive(d: Path) -> list[str]:
    return ["-drive", f"if=none,id=drive0,file={d}/top.qcow2,format=qcow2,node-name=top,"
                      "backing.node-name=mid,backing.backing.node-name=base",
            "-device", "virtio-scsi", "-device", "scsi-hd,id=scsi0,drive=drive0"]


def deleted(peer: EventPeer) -> None:
    peer.wait_event(lambda e: e["event"] == "DEVICE_DELETED")


def run(tmp_path: Path, steps: list[Step]) -> dict[str, list[str]]:
    peers: dict[str, EventPeer] = {}

    def keep(name: str, factory: Any) -> Any:
        def make(d: Path) -> EventPeer:
            peers[name] = factory(d)
            return peers[name]
        return make

    run_scenario(tmp_path, chain, steps, peers=[
        ("qemu-system", keep("qemu-system", qemu_system_peer(legacy_drive))),
        ("engine", keep("engine", engine_peer(legacy_drive)))])
    sequences = {name: event_sequence(p.events) for name, p in peers.items()}
    assert sequences["engine"] == sequences["qemu-system"], sequences
    for image in IMAGES:      # how much a cancelled commit wrote into the base is timing;
        qd, ed = tmp_path / "qemu-system" / image, tmp_path / "engine" / image
        if image != "base.qcow2":       # what the layers above show is not
            assert compare(qd, ed), f"{image}: guest content differs"
        check(ed)
    return sequences


def test_unplugging_the_device_cancels_a_commit_on_its_drive(tmp_path: Path) -> None:
    events = run(tmp_path, [
        Step("block-commit", {"device": "drive0", "top": "{dir}/mid.qcow2",
                              "base": "{dir}/base.qcow2", "speed": 1}, expect="ok"),
        Step("device_del", {"id": "scsi0"}, expect="ok", compare_graph=False,
             after=until("null", "drive0")),
        Step("query-block-jobs", {}, compare_graph=False, after=deleted),
        Step("query-named-block-nodes", {"flat": True}, compare_graph=False),
    ])["engine"]
    assert "CANCELLED:drive0" in events and "DEVICE_DELETED" in events


def test_unplugging_leaves_a_stream_on_other_nodes_running(tmp_path: Path) -> None:
    events = run(tmp_path, [
        Step("block-stream", {"device": "mid", "job-id": "s0", "speed": 1}, expect="ok"),
        Step("device_del", {"id": "scsi0"}, expect="ok", compare_graph=False, after=deleted),
        Step("query-block-jobs", {}, compare_graph=False),
        Step("block-job-set-speed", {"device": "s0", "speed": 0}, compare_graph=False,
             after=until("null", "s0")),
    ])["engine"]
    assert "COMPLETED:s0" in events

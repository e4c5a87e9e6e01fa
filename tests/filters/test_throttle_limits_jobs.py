"""A throttle group really limits: a stream job reading through a ``throttle`` node,
side by side on qemu-storage-daemon 7.2 and the engine (cf. QEMU's iotests 093 and 192).

With ``bps-read`` at one byte a second, the first 512 KiB chunk goes at once (the bucket
was empty) and the second waits some six days: both peers' jobs stand at the same
offset, busy, for as long as the test cares to look, so the comparison does not depend
on timing. New limits set by ``qom-set`` leave the waiting request's timer armed (the
job still stands); a ``blockdev-reopen`` of the throttle node drains it, which lets the
request go, and with the limits now off the job runs to its end on both.

A burst rate (``bps-read-max``, a bucket of ``max`` × ``max-length`` bytes) lets the
job run to 1.5 MiB before it stands — the third chunk finds the bucket just full, which
still lets a request go; ``iops-size`` counts a 512 KiB chunk as many operations, so an
``iops-read`` limit of one a second holds the job as a byte limit does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.filters.peers import Peers
from tests.support import qemu

pytestmark = pytest.mark.qemu

MIB = 1 << 20


def _images(d: Path) -> None:
    qemu.create(d / "base.qcow2", "2M")
    qemu.qemu_io(d / "base.qcow2", "write -P 0x33 0 2M")
    qemu.create(d / "top.qcow2", "2M")


def _graph(gid: str, limits: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("object-add", {"qom-type": "throttle-group", "id": gid, "limits": limits}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "base", "file": {
            "driver": "file", "filename": "{dir}/base.qcow2"}}),
        ("blockdev-add", {"driver": "throttle", "node-name": "thr", "throttle-group": gid,
                          "file": "base"}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "top", "backing": "thr", "file": {
            "driver": "file", "filename": "{dir}/top.qcow2"}}),
    ]


KIB = 1 << 10
OFF = {"bps-read": 0, "bps-read-max": 0, "bps-read-max-length": 1, "iops-read": 0,
       "iops-read-max": 0, "iops-size": 0}


@pytest.mark.parametrize(("limits", "stands_at"), [
    ({"bps-read": 1}, 512 * KIB),
    ({"bps-read": 1, "bps-read-max": MIB}, 1536 * KIB),
    ({"iops-read": 1, "iops-size": 64}, 512 * KIB),
    ({"iops-read": 1, "iops-read-max": 16384, "iops-size": 64}, 1536 * KIB),
], ids=["bps", "bps-burst", "iops-size", "iops-size-burst"])
def test_stream_through_a_throttle_node_is_held_by_its_limits(
        tmp_path: Path, limits: dict[str, int], stands_at: int) -> None:
    peers = Peers(tmp_path, _images)
    try:
        for command, arguments in _graph("tg0", limits):
            peers.both(command, arguments)
        peers.both("block-stream", {"job-id": "s0", "device": "top"})
        # the first chunks went at once; the next waits days for the bucket to leak
        peers.wait_for(lambda: all(j and j[0]["offset"] == stands_at
                                   for j in peers.jobs()), "the chunks the bucket holds")
        qsd, engine = peers.jobs()
        assert qsd == engine
        assert qsd[0]["status"] == "running" and qsd[0]["busy"] is True
        assert qsd[0]["len"] == 2 * MIB

        # faster limits: the next request is free, the waiting one keeps its timer
        peers.both("qom-set", {"path": "/objects/tg0", "property": "limits",
                               "value": OFF})
        peers.both("qom-get", {"path": "tg0", "property": "limits"})
        qsd, engine = peers.jobs()
        assert qsd == engine and qsd[0]["offset"] == stands_at

        # a reopen drains the node: the request goes, and the rest is unthrottled
        peers.both("blockdev-reopen", {"options": [{
            "driver": "throttle", "node-name": "thr", "throttle-group": "tg0",
            "file": "base"}]})
        peers.wait_for(lambda: peers.concluded("qsd", "s0") and
                       peers.concluded("engine", "s0"), "the job's end")
        qsd_events = [e["data"] for e in peers.events["qsd"]
                      if e["event"] == "BLOCK_JOB_COMPLETED"]
        engine_events = [e["data"] for e in peers.events["engine"]
                         if e["event"] == "BLOCK_JOB_COMPLETED"]
        assert qsd_events == engine_events and qsd_events[0]["offset"] == 2 * MIB
        peers.both("job-dismiss", {"id": "s0"})
        peers.both("blockdev-del", {"node-name": "top"})
    finally:
        peers.close()
    q, e = peers.dirs["qsd"] / "top.qcow2", peers.dirs["engine"] / "top.qcow2"
    assert qemu.compare(q, e)
    assert qemu.map_json(q) == qemu.map_json(e)
    qemu.check(e)

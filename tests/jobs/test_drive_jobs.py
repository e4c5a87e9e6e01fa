"""Commit and stream under a VM drive, against qemu-system-x86_64 7.2.

A guest disk shares resize, write-unchanged and consistent-read but not write, so
the backing links below it do not share write either. The jobs must still be able
to write into their base: QEMU's ``commit_top`` takes nothing from the top node and
its ``mirror_top`` (active commit) force-shares write and drops consistent-read.
Each scenario compares replies, graphs (with every edge's permissions) and job
events step by step, then — with the drive gone — the images' backing strings,
guest content (``qemu-img compare`` between the two peers' copies) and
``qemu-img check``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from engine.qmp import Engine
from tests.jobs.jobdiff import event_sequence
from tests.support.differential import (
    EnginePeer,
    Mismatch,
    QemuSystemPeer,
    Step,
    StepResult,
    run_scenario,
)
from tests.support.qemu import check, compare, create, drain_events, info, qemu_io

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]

IMAGES = ("top.qcow2", "mid.qcow2", "base.qcow2")


def chain(d: Path) -> None:
    """base <- mid <- top, 2 MiB, each layer with its own (partly overlapping) data."""
    create(d / "base.qcow2", "2M")
    qemu_io(d / "base.qcow2", "write -P 1 0 1M")
    create(d / "mid.qcow2", "2M", backing=str(d / "base.qcow2"))
    qemu_io(d / "mid.qcow2", "write -P 2 512k 1M")
    create(d / "top.qcow2", "2M", backing=str(d / "mid.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 3 1M 512k")


def layers(d: Path) -> list[dict[str, Any]]:
    """blockdev-add arguments for the chain, bottom first, as the editor's demo opens it."""
    out = []
    for name, backing, ro in (("base", None, True), ("mid", "base", True),
                              ("top", "mid", False)):
        out.append({"driver": "qcow2", "node-name": name, "read-only": ro,
                    "file": {"driver": "file", "node-name": f"{name}-file",
                             "filename": str(d / f"{name}.qcow2")},
                    "backing": backing})
    return out


class _Events:
    """Collects a peer's events and waits for a job status."""

    def __init__(self, peer: Any, pull: Any) -> None:
        self.peer = peer
        self._pull = pull
        self.events: list[dict[str, Any]] = []

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        reply = self.peer.execute(command, arguments)
        self._pull(self, 0.0)
        return reply

    def wait_status(self, job_id: str, status: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._pull(self, 0.02)
            if any(e["event"] == "JOB_STATUS_CHANGE"
                   and e["data"] == {"id": job_id, "status": status} for e in self.events):
                return
            time.sleep(0.01)
        raise Mismatch(f"job {job_id} never reached {status}: "
                       + json.dumps(event_sequence(self.events)))

    def stop(self) -> None:
        stop = getattr(self.peer, "stop", None) or self.peer.close
        stop()


def _pull_qemu(peer: _Events, wait: float) -> None:
    qmp = peer.peer.qmp
    if wait:
        with contextlib.suppress(TimeoutError):
            peer.events.append(qmp.pull_event(wait=wait))
    peer.events.extend(drain_events(qmp))


def qemu_vm(d: Path) -> _Events:
    args: list[str] = []
    for layer in layers(d):
        args += ["-blockdev", json.dumps(layer)]
    return _Events(QemuSystemPeer(d, *args, "-device", "ide-hd,drive=top,id=vm1"),
                   _pull_qemu)


def engine_vm(d: Path) -> _Events:
    eng = Engine()
    for layer in layers(d):
        eng.execute("blockdev-add", layer)
    eng.add_backend("vm1", "top")
    peer = _Events(EnginePeer(eng), lambda p, wait: None)
    eng.add_listener(peer.events.append)
    return peer


def run(tmp_path: Path, steps: list[Step]) -> tuple[dict[str, _Events], list[StepResult]]:
    peers: dict[str, _Events] = {}

    def keep(name: str, factory: Any) -> Any:
        def make(d: Path) -> _Events:
            peers[name] = factory(d)
            return peers[name]
        return make

    results = run_scenario(tmp_path, chain, steps,
                 peers=[("qemu-system", keep("qemu-system", qemu_vm)),
                        ("engine", keep("engine", engine_vm))])
    sequences = {name: event_sequence(p.events) for name, p in peers.items()}
    assert sequences["engine"] == sequences["qemu-system"], sequences
    # the peers are stopped (the drive is gone): compare what they left on disk
    qd, ed = tmp_path / "qemu-system", tmp_path / "engine"
    for image in IMAGES:
        q, e = info(qd / image), info(ed / image)
        assert (q.get("backing-filename") or "").replace(str(qd), "{dir}") == \
            (e.get("backing-filename") or "").replace(str(ed), "{dir}"), image
        assert compare(qd / image, ed / image), f"{image}: guest content differs"
        check(ed / image)
        check(qd / image)
    return peers, results


def until(status: str, job_id: str) -> Any:
    def after(peer: _Events) -> None:
        peer.wait_status(job_id, status)
    return after


def test_active_commit_under_a_drive_pivots_it_to_the_base(tmp_path: Path) -> None:
    peers, results = run(tmp_path, [
        Step("block-commit", {"job-id": "c1", "device": "top", "base-node": "mid"},
             expect="ok", compare_graph=False, after=until("ready", "c1")),
        Step("query-block-jobs", {}),         # the graph while ready: filter, job, drive
        Step("job-complete", {"id": "c1"}, expect="ok", compare_graph=False,
             after=until("null", "c1")),
        Step("query-block", {}),              # the drive now on mid
    ])
    assert "c1:ready" in event_sequence(peers["engine"].events)
    for reply in results[-1].replies:     # both peers: the drive was pivoted to mid
        assert reply["return"][0]["inserted"]["node-name"] == "mid"


def test_active_commit_under_a_drive_down_to_the_bottom(tmp_path: Path) -> None:
    run(tmp_path, [
        Step("block-commit", {"job-id": "c1", "device": "top"},
             expect="ok", compare_graph=False, after=until("ready", "c1")),
        Step("query-block-jobs", {}),         # mid is an intermediate node
        Step("job-complete", {"id": "c1"}, expect="ok", compare_graph=False,
             after=until("null", "c1")),
        Step("query-block", {}),
    ])


def test_intermediate_commit_under_a_drive(tmp_path: Path) -> None:
    run(tmp_path, [
        Step("block-commit", {"job-id": "c2", "device": "top", "top-node": "mid",
                              "base-node": "base", "speed": 1}, expect="ok"),
        Step("block-job-set-speed", {"device": "c2", "speed": 0}, compare_graph=False,
             after=until("null", "c2")),
        Step("query-block", {}),
    ])


def test_stream_under_a_drive(tmp_path: Path) -> None:
    run(tmp_path, [
        Step("block-stream", {"job-id": "s1", "device": "top", "base-node": "base",
                              "speed": 1}, expect="ok"),
        Step("block-job-set-speed", {"device": "s1", "speed": 0}, compare_graph=False,
             after=until("null", "s1")),
        Step("query-block", {}),
    ])

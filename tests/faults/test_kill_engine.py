"""``kill -9`` of ``blockgraph serve`` at points spread over a running job.

The engine runs as its own process; a stream, commit or active commit is started
with a rate limit so it lasts a couple of seconds, and the process is killed with
SIGKILL after a different delay each time (including during completion of the
active commit). Afterwards — nothing was closed cleanly — ``qemu-img check`` finds
no corruption in any image, and the guest view of the top image, read by
``qemu-img``, is what it was before the job: a job that had not completed has not
changed what the guest sees, and one that completed did not either.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.faults.support import check_intact, guest_bytes
from tests.server.support import RawClient, ServeProcess
from tests.support.qemu import create, info, qemu_io

SIZE = 8 << 20
SPEED = 3 << 20          # bytes per second: each copy lasts more than a second


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    g = tmp_path_factory.mktemp("kill") / "golden"
    g.mkdir()
    create(g / "base.raw", SIZE, fmt="raw")
    qemu_io(g / "base.raw", "write -P 0x11 0 8M", fmt="raw")
    create(g / "mid.qcow2", SIZE, backing="base.raw", backing_fmt="raw")
    qemu_io(g / "mid.qcow2", "write -P 0x22 1M 3M", "write -P 0x23 6M 1M")
    create(g / "top.qcow2", SIZE, backing="mid.qcow2", backing_fmt="qcow2")
    qemu_io(g / "top.qcow2", "write -P 0x33 0 512k", "write -P 0x34 2M 1M")
    return g


def _start_job(client: RawClient, kind: str, mid: str) -> None:
    args = {"stream": ("block-stream", {"job-id": "j", "device": "top", "speed": SPEED}),
            "commit": ("block-commit", {"job-id": "j", "device": "top", "top-node": mid,
                                        "speed": SPEED}),
            "active": ("block-commit", {"job-id": "j", "device": "top", "speed": SPEED})}
    command, arguments = args[kind]
    reply = client.cmd(command, arguments)
    assert "return" in reply, reply


def _copying(client: RawClient, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    """The job once it has copied something: on a busy machine its thread may not have
    finished a first chunk after the delay. The rate limit keeps it from finishing
    before a kill that follows at once."""
    deadline = time.monotonic() + timeout
    while True:
        [job] = client.cmd("query-block-jobs")["return"]
        if job["offset"] > 0 or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["stream", "commit", "active"])
@pytest.mark.parametrize("delay", [0.05, 0.4, 0.9, 1.6])
def test_kill_9_during_a_job_leaves_images_intact(golden: Path, tmp_path: Path, kind: str,
                                                  delay: float) -> None:
    work = tmp_path / "images"
    shutil.copytree(golden, work)
    before = guest_bytes(golden / "top.qcow2")
    with ServeProcess(tmp_path, "--root", str(work)) as serve:
        client = RawClient(serve.socket_path).negotiate()
        assert "return" in client.cmd("blockdev-add", {
            "driver": "qcow2", "node-name": "top",
            "file": {"driver": "file", "filename": str(work / "top.qcow2")}})
        nodes = client.cmd("query-named-block-nodes", {"flat": True})["return"]
        mid = next(n["node-name"] for n in nodes
                   if n["drv"] == "qcow2" and n["file"].endswith("mid.qcow2"))
        _start_job(client, kind, mid)
        if kind == "active":
            # complete as soon as the job is ready: the kill may land inside the pivot
            client.cmd("block-job-set-speed", {"device": "j", "speed": 0}) if delay > 1 else None
        time.sleep(delay)
        if delay in (0.4, 0.9):
            job = _copying(client)   # killed mid-copy, truly
            assert 0 < job["offset"] < job["len"], job
        if kind == "active" and delay > 1:
            client.send(b'{"execute": "job-complete", "arguments": {"id": "j"}}')
            time.sleep(0.01)
        serve.signal(signal.SIGKILL)
        serve.wait()
        client.close()
    for name in ("mid.qcow2", "top.qcow2"):
        check_intact(work / name)
    assert guest_bytes(work / "top.qcow2") == before, f"{kind} killed after {delay} s"
    header = info(work / "top.qcow2").get("backing-filename")
    assert header in ("mid.qcow2", "base.raw", str(work / "base.raw"), None), header

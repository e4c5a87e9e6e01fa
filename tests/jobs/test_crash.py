"""Killing the engine in the middle of a stream leaves every image intact.

A child process runs the engine and streams a 256 MiB chain (data every MiB)
into its top, rate-limited so the kill lands mid-copy; the parent SIGKILLs it
once a third of the image is done. Every image must then pass ``qemu-img check``
without corruption and the top must show the same guest content as a copy taken
before the job. As with QEMU, the clusters of the one write in flight may be
*leaked* (allocated, unreferenced: wasted space, no harm to data); the test
bounds them to one job iteration and shows ``qemu-img check -r leaks`` reclaims
them, after which the image is clean.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.qemu import check, compare, create, info, qemu_img, qemu_io

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time
from engine.qmp import Engine

d = sys.argv[1]
eng = Engine()
eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top",
                             "file": {"driver": "file", "filename": d + "/top.qcow2"}})
eng.execute("block-stream", {"job-id": "s", "device": "top", "speed": 48 << 20})
while True:
    jobs = eng.execute("query-block-jobs")
    if not jobs:
        print(json.dumps({"done": True}), flush=True)
        break
    print(json.dumps({"offset": jobs[0]["offset"], "len": jobs[0]["len"]}), flush=True)
    time.sleep(0.02)
"""


#: one job iteration (512 KiB) of 64 KiB clusters, plus an L2 table and a refcount block
MAX_LEAKED_CLUSTERS = 8 + 2


def check_after_crash(path: Path) -> dict:
    """``qemu-img check``: no corruption; leaks (exit 3) are repaired, then it is clean."""
    proc = qemu_img("check", "--output=json", str(path), check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert report.get("check-errors", 0) == 0 and "corruptions" not in report, report
    if proc.returncode == 3:
        qemu_img("check", "-q", "-r", "leaks", str(path), check=False)
    check(path)
    return report


def build_chain(d: Path) -> None:
    mib = 1 << 20
    create(d / "base.qcow2", "256M")
    qemu_io(d / "base.qcow2", *[f"write -P {1 + i % 200} {i * mib} 256k" for i in range(256)])
    create(d / "mid.qcow2", "256M", backing=str(d / "base.qcow2"))
    qemu_io(d / "mid.qcow2", *[f"write -P {i % 250} {i * mib + 512 * 1024} 128k"
                               for i in range(0, 256, 2)])
    create(d / "top.qcow2", "256M", backing=str(d / "mid.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 99 100M 1M")


def test_kill_during_stream_leaves_images_intact(tmp_path: Path) -> None:
    build_chain(tmp_path)
    reference = tmp_path / "reference.qcow2"
    shutil.copy(tmp_path / "top.qcow2", reference)  # same header: same backing chain
    before = {name: info(tmp_path / name) for name in ("top.qcow2", "mid.qcow2", "base.qcow2")}
    length_before = (tmp_path / "top.qcow2").stat().st_size

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_at = None
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        for line in child.stdout:
            state = json.loads(line)
            assert "done" not in state, "the stream finished before it could be killed"
            if state["len"] and state["offset"] >= state["len"] // 3:
                child.send_signal(signal.SIGKILL)
                killed_at = state["offset"]
                break
            assert time.monotonic() < deadline, "the stream made no progress"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert killed_at is not None, child.stderr.read() if child.stderr else ""
    assert killed_at < 256 << 20

    report = check_after_crash(tmp_path / "top.qcow2")
    assert report.get("leaks", 0) <= MAX_LEAKED_CLUSTERS, report
    for name in ("top.qcow2", "mid.qcow2", "base.qcow2"):
        if name != "top.qcow2":
            check(tmp_path / name)
        after = info(tmp_path / name)
        assert after.get("backing-filename") == before[name].get("backing-filename"), name
    assert compare(reference, tmp_path / "top.qcow2"), "guest content of top changed"
    assert info(tmp_path / "top.qcow2")["backing-filename"] == str(tmp_path / "mid.qcow2")
    # The partial copy is real: the killed stream had written data clusters into the
    # top (the file grew; its tables did not yet point at them: they are the leaks).
    assert (tmp_path / "top.qcow2").stat().st_size > length_before

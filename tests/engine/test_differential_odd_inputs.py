"""Odd inputs answered as qemu-storage-daemon 7.2 answers them, step by step:

- FIFOs and device files given to the ``file`` driver (QEMU refuses what is not a
  regular file; a FIFO opened read-only would make QEMU wait for a writer for ever,
  which the engine does not copy: it refuses with the same text), and a FIFO as the
  target of ``blockdev-create`` (QEMU fails to truncate it);
- an empty file name, to ``blockdev-add`` and to ``blockdev-create``;
- numbers out of range: ``int`` members beyond 64 bits signed (``speed`` 2^64−1, a
  ``null-co`` size of 2^63), a null node longer than QEMU's largest (1 GiB short of
  2^63, rounded up to sectors), a raw ``size`` beyond its file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.qemu import create

pytestmark = pytest.mark.qemu

#: QEMU's largest node length: INT64_MAX aligned down to 1 GiB
MAX_LENGTH = (1 << 63) - (1 << 30)


def images(d: Path) -> None:
    create(d / "a.qcow2", "1M")
    create(d / "b.raw", "1M", fmt="raw")
    os.mkfifo(d / "fifo")


def _file(name: str, **extra: Any) -> dict[str, Any]:
    return {"driver": "file", "filename": name, **extra}


def test_fifos_and_devices_are_not_files(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        Step("blockdev-add", _file("{dir}/fifo", **{"node-name": "f0"}), expect="error"),
        Step("blockdev-add", _file("/dev/null", **{"node-name": "f1"}), expect="error"),
        Step("blockdev-add", _file("/dev/zero", **{"node-name": "f2", "read-only": True}),
             expect="error"),
        Step("blockdev-add", {"driver": "raw", "node-name": "r",
                              "file": _file("/dev/null")}, expect="error"),
        Step("blockdev-add", _file("{dir}", **{"node-name": "d"}), expect="error"),
    ])


def test_a_read_only_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    """QEMU blocks for ever in open() here; the engine answers at once, as QEMU answers
    for the FIFO opened read-write."""
    from engine.qmp import Engine, QMPError

    images(tmp_path)
    engine = Engine()
    try:
        with pytest.raises(QMPError) as exc:
            engine.execute("blockdev-add", _file(str(tmp_path / "fifo"),
                                                 **{"node-name": "f", "read-only": True}))
        assert exc.value.desc == f"'file' driver requires '{tmp_path}/fifo' to be a " \
                                 "regular file"
    finally:
        engine.close()


def test_empty_file_names(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        Step("blockdev-add", _file("", **{"node-name": "f"}), expect="error"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q", "file": _file("")},
             expect="error"),
        Step("blockdev-create", {"job-id": "c", "options": {
            "driver": "file", "filename": "", "size": 1 << 20}}, after=_concluded("c")),
        Step("query-jobs", {}, compare_return=True),
        Step("blockdev-create", {"job-id": "p", "options": {
            "driver": "file", "filename": "{dir}/fifo", "size": 1 << 20}},
            after=_concluded("p")),
        Step("query-jobs", {}, compare_return=True),
    ])


def _concluded(job: str) -> Any:
    def wait(peer: Any) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = peer.execute("query-jobs")["return"]
            if any(j["id"] == job and j["status"] == "concluded" for j in jobs):
                return
            time.sleep(0.01)
        raise AssertionError(f"job {job} did not conclude")
    return wait


def test_numbers_out_of_range(tmp_path: Path) -> None:
    steps = [Step("blockdev-add", {"driver": "null-co", "node-name": f"n{i}", "size": size},
                  expect=expect)
             for i, (size, expect) in enumerate([
                 (MAX_LENGTH, "ok"), (MAX_LENGTH - 511, "ok"), (MAX_LENGTH + 1, "error"),
                 ((1 << 63) - 1, "error"), (1 << 63, "error"), ((1 << 64) - 1, "error"),
                 (1 << 64, "error")])]
    run_scenario(tmp_path, images, [
        *steps,
        Step("blockdev-add", {"driver": "null-aio", "node-name": "na",
                              "size": MAX_LENGTH + 1}, expect="error"),
        Step("blockdev-add", {"driver": "raw", "node-name": "r", "size": 4 << 20,
                              "file": _file("{dir}/b.raw")}, expect="error"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q",
                              "file": _file("{dir}/a.qcow2")}),
        Step("block-stream", {"job-id": "s", "device": "q", "speed": (1 << 64) - 1},
             expect="error"),
        Step("block-stream", {"job-id": "s", "device": "q", "speed": 1 << 63},
             expect="error"),
        Step("blockdev-create", {"job-id": "c", "options": {
            "driver": "file", "filename": "{dir}/new.raw", "size": 1 << 64}},
            expect="error"),
    ])

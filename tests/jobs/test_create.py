"""blockdev-create jobs (file, qcow2) against qemu-storage-daemon 7.2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support.qemu import create

pytestmark = pytest.mark.qemu


def base_image(d: Path) -> None:
    create(d / "base.qcow2", "4M")


def test_create_file_then_qcow2_with_backing(tmp_path: Path) -> None:
    run_jobs(tmp_path, base_image, [
        Cmd("blockdev-create", {"job-id": "c0", "options": {
            "driver": "file", "filename": "{dir}/new.qcow2", "size": 0}}),
        WaitStatus("c0", "concluded"),
        Cmd("query-jobs", compare_return=True),
        Cmd("blockdev-create", {"job-id": "c0", "options": {
            "driver": "file", "filename": "{dir}/x", "size": 0}}),
        Cmd("job-dismiss", {"id": "c0"}),
        Cmd("blockdev-add", {"driver": "file", "node-name": "nf",
                             "filename": "{dir}/new.qcow2"}),
        Cmd("blockdev-create", {"job-id": "c1", "options": {
            "driver": "qcow2", "file": "nf", "size": 4 << 20,
            "backing-file": "{dir}/base.qcow2", "backing-fmt": "qcow2"}},
            compare_graph=False),  # QEMU holds a temporary node while it formats
        WaitStatus("c1", "concluded"),
        Cmd("query-jobs", compare_return=True),
        Cmd("job-dismiss", {"id": "c1"}),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "nq", "file": "nf"}),
    ], ("new.qcow2",))


def test_create_failures_are_job_errors(tmp_path: Path) -> None:
    run_jobs(tmp_path, base_image, [
        Cmd("blockdev-create", {"job-id": "e1", "options": {
            "driver": "qcow2", "file": "nonexist", "size": 1 << 20}}),
        WaitStatus("e1", "concluded"),
        Cmd("blockdev-create", {"job-id": "e2", "options": {
            "driver": "file", "filename": "{dir}/nodir/x", "size": 0}}),
        WaitStatus("e2", "concluded"),
        Cmd("blockdev-add", {"driver": "file", "node-name": "bf",
                             "filename": "{dir}/base.qcow2"}),
        Cmd("blockdev-create", {"job-id": "e3", "options": {
            "driver": "qcow2", "file": "bf", "size": 1000}}),
        WaitStatus("e3", "concluded"),
        Cmd("blockdev-create", {"job-id": "e4", "options": {
            "driver": "qcow2", "file": "bf", "size": 1 << 20, "cluster-size": 1000}}),
        WaitStatus("e4", "concluded"),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "b", "file": "bf"}),
        Cmd("blockdev-create", {"job-id": "e5", "options": {
            "driver": "qcow2", "file": "bf", "size": 1 << 20}}),
        WaitStatus("e5", "concluded"),
        Cmd("query-jobs", compare_return=True),
        Cmd("query-block-jobs", compare_return=True),
        Cmd("blockdev-create", {"job-id": "e5", "options": {
            "driver": "file", "filename": "{dir}/y", "size": 0}}),
        Cmd("blockdev-create", {"job-id": "1bad", "options": {
            "driver": "file", "filename": "{dir}/y", "size": 0}}),
        Cmd("block-job-cancel", {"device": "e5"}),
        Cmd("job-cancel", {"id": "e5"}),
        Cmd("job-dismiss", {"id": "e5"}),
    ], ("base.qcow2",))

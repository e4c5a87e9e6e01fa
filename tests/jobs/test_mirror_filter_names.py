"""``drive-mirror`` with targets and sources named through debugging filters
(``blkdebug:CONFIG:IMAGE``, ``json:{...}``), against qemu-storage-daemon 7.2.

The target file name is parsed as QEMU parses any file name (protocol prefix,
``json:`` options), so that the target node sits on a blkdebug filter; the backing
name a created target gets is the filename QEMU computes for the source's backing
(or the source), blkdebug included. Graphs (``query-named-block-nodes`` filenames),
replies, events, header fields and content are compared after every step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support.qemu import compare, create, qemu_img, qemu_io

pytestmark = pytest.mark.qemu


def images(d: Path) -> None:
    """base.raw <- top.qcow2 (backing named ``blkdebug:rules:base.raw``), a target."""
    (d / "rules").write_text("")
    qemu_img("create", "-f", "raw", str(d / "base.raw"), "2M")
    qemu_io(d / "base.raw", "write -P 1 0 1M", fmt="raw")
    create(d / "top.qcow2", "2M", backing=f"blkdebug:{d}/rules:{d}/base.raw", backing_fmt="raw")
    qemu_io(d / "top.qcow2", "write -P 2 1M 64k")
    create(d / "target.qcow2", "2M")


def add_top() -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                "file": {"driver": "file", "filename": "{dir}/top.qcow2"}})


def finish(job: str = "m0") -> list[Cmd | WaitStatus]:
    return [WaitStatus(job, "ready"),
            Cmd("block-job-complete", {"device": job}, compare_graph=False),
            WaitStatus(job, "null")]


@pytest.mark.parametrize("target", [
    "blkdebug:{dir}/rules:{dir}/target.qcow2",
    "blkdebug::{dir}/target.qcow2",
    'json:{"driver": "qcow2", "file": {"driver": "blkdebug", "config": "{dir}/rules",'
    ' "image": {"driver": "file", "filename": "{dir}/target.qcow2"}}}',
    'json:{"file.driver": "file", "file.filename": "{dir}/target.qcow2"}',
    "file:{dir}/target.qcow2",
])
def test_existing_target_named_through_a_filter(tmp_path: Path, target: str) -> None:
    run_jobs(tmp_path, images, [
        add_top(),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "full",
                             "mode": "existing", "target": target},
            compare_graph=False),
        Cmd("query-named-block-nodes", compare_graph=False, compare_return=True,
            project=lambda nodes: sorted([n["node-name"].startswith("#"), n["drv"],
                                          n["file"], n["image"].get("backing-filename") or ""]
                                         for n in nodes)),
        *finish(),
    ], ("top.qcow2", "target.qcow2"))


@pytest.mark.parametrize("sync", ["top", "none"])
def test_created_target_names_a_blkdebug_backing(tmp_path: Path, sync: str) -> None:
    run_jobs(tmp_path, images, [
        add_top(),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": sync,
                             "target": "{dir}/new.qcow2", "node-name": "new"},
            compare_graph=False),
        *finish(),
    ], ("top.qcow2", "new.qcow2"))


def test_created_target_on_a_blkdebug_source(tmp_path: Path) -> None:
    """The source opened by a blkdebug file name: sync none names it in the target."""
    run_jobs(tmp_path, images, [
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                             "file": {"driver": "blkdebug", "config": "{dir}/rules",
                                      "image": {"driver": "file",
                                                "filename": "{dir}/top.qcow2"}}}),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "none",
                             "target": "{dir}/new.qcow2", "node-name": "new"},
            compare_graph=False),
        *finish(),
    ], ("top.qcow2", "new.qcow2"))


@pytest.mark.parametrize("mode", ["absolute-paths", "existing"])
def test_target_on_a_protocol_that_cannot_create(tmp_path: Path, mode: str) -> None:
    run_jobs(tmp_path, images, [
        add_top(),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "full", "mode": mode,
                             "target": "blkdebug:{dir}/rules:{dir}/absent.qcow2"}),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "full", "mode": mode,
                             "target": "nosuch:{dir}/absent.qcow2"}),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "full", "mode": mode,
                             "target": "json:{\"driver\": \"qcow2\"}"}),
    ], ("top.qcow2",))


def large_cluster_target(d: Path) -> None:
    """top (data at 1 MiB + 64 KiB) over base.raw (data everywhere), and a target with
    128 KiB clusters whose header names base.raw (not opened by ``existing``)."""
    qemu_img("create", "-f", "raw", str(d / "base.raw"), "2M")
    qemu_io(d / "base.raw", "write -P 7 0 2M", fmt="raw")
    create(d / "top.qcow2", "2M", backing=str(d / "base.raw"), backing_fmt="raw")
    qemu_io(d / "top.qcow2", "write -P 9 1088k 512")
    create(d / "target.qcow2", "2M", backing=str(d / "base.raw"), backing_fmt="raw",
           options="cluster_size=131072")


def test_sync_top_into_larger_clusters_copies_whole_clusters(tmp_path: Path) -> None:
    """The copy at 1 MiB + 64 KiB widens to the target's whole 128 KiB cluster: the first
    half comes from the source's backing, else the target would read zeros there."""
    result = run_jobs(tmp_path, large_cluster_target, [
        add_top(),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "top",
                             "mode": "existing", "target": "{dir}/target.qcow2"},
            compare_graph=False),
        *finish(),
    ], ("top.qcow2", "target.qcow2"))
    for d in result.dirs.values():
        assert compare(d / "top.qcow2", d / "target.qcow2")


def test_widened_copy_reads_where_blkdebug_fails(tmp_path: Path) -> None:
    """The widened copy reads the source's backing at 1 MiB, where blkdebug fails once:
    with ``on-source-error=ignore`` the job reports the read error, retries, completes."""
    def setup(d: Path) -> None:
        large_cluster_target(d)
        (d / "rules").write_text('[inject-error]\nevent = "read_aio"\nerrno = "5"\n'
                                 'once = "on"\nsector = "2048"\n')
        qemu_img("rebase", "-u", "-f", "qcow2", "-F", "raw", "-b",
                 f"blkdebug:{d}/rules:{d}/base.raw", str(d / "top.qcow2"))

    result = run_jobs(tmp_path, setup, [
        add_top(),
        Cmd("drive-mirror", {"job-id": "m0", "device": "top", "sync": "top",
                             "mode": "existing", "target": "{dir}/target.qcow2",
                             "on-source-error": "ignore"},
            compare_graph=False),
        *finish(),
    ], ("target.qcow2",))
    for name in result.dirs:
        assert any(e["event"] == "BLOCK_JOB_ERROR" and e["data"]["operation"] == "read"
                   for e in result.events[name]), name


@pytest.mark.parametrize("backing", ["nosuch:{dir}/base.raw", "file:{dir}/base.raw",
                                     "blkdebug::{dir}/base.raw"])
def test_header_backing_names_parsed_as_target_names_are(tmp_path: Path, backing: str) -> None:
    """Header backing names go through the same parser as the target's name."""
    def setup(d: Path) -> None:
        images(d)
        qemu_img("rebase", "-u", "-f", "qcow2", "-F", "raw", "-b",
                 backing.replace("{dir}", str(d)), str(d / "top.qcow2"))

    run_jobs(tmp_path, setup, [add_top()])

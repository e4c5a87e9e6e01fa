"""``blkdebug`` against qemu-storage-daemon 7.2: its options and refusals, the graph and
filenames it makes, and the errors it injects into guest I/O and block jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support import qemu
from tests.support.differential import Step, run_scenario

pytestmark = pytest.mark.qemu


def _images(d: Path) -> None:
    qemu.qemu_img("create", "-f", "raw", d / "base.raw", "2M")
    for name in ("top", "top1", "top2"):
        qemu.qemu_img("create", "-f", "qcow2", d / f"{name}.qcow2", "2M")
        qemu.qemu_io(d / f"{name}.qcow2", "write -P 0x22 0 512k")
    (d / "rules.conf").write_text(
        '[inject-error]\nevent = "read_aio"\nerrno = "28"\nsector = "8"\n\n'
        '[set-state]\nstate = "1"\nevent = "read_aio"\nnew_state = "2"\n')
    (d / "bad.conf").write_text('[inject-error]\nevent = "no_such_event"\n')


def blkdebug(name: str, image: Any, expect: str | None = None, **opts: Any) -> Step:
    return Step("blockdev-add", {"driver": "blkdebug", "node-name": name, "image": image,
                                 **opts}, expect=expect)


FILE = {"driver": "file", "filename": "{dir}/top.qcow2"}
BASE = {"driver": "file", "filename": "{dir}/base.raw"}
FILE1 = {"driver": "file", "filename": "{dir}/top1.qcow2"}
FILE2 = {"driver": "file", "filename": "{dir}/top2.qcow2"}


def test_blkdebug_options_graph_and_filenames(tmp_path: Path) -> None:
    run_scenario(tmp_path, _images, [
        blkdebug("d0", FILE, expect="ok"),
        blkdebug("d1", FILE1, config="{dir}/rules.conf", expect="ok"),
        blkdebug("d2", FILE2, expect="ok", **{"inject-error": [
            {"event": "read_aio", "sector": 1024, "once": True, "errno": 5},
            {"event": "write_aio", "iotype": "write", "state": 2}],
            "set-state": [{"event": "read_aio", "new_state": 2}]}),
        blkdebug("d3", BASE, expect="ok", align=4096, **{"max-transfer": 65536}),
        blkdebug("d4", FILE, expect="error", align=3000),
        blkdebug("d4", FILE, expect="error", align=512, **{"max-transfer": 1000}),
        blkdebug("d4", FILE, expect="error", align=4096, **{"opt-discard": 512}),
        blkdebug("d4", FILE, expect="error", **{"opt-write-zero": 4096,
                                                 "max-write-zero": 6144}),
        blkdebug("d4", FILE, expect="error", config="{dir}/missing.conf"),
        blkdebug("d4", FILE, expect="error", config="{dir}/bad.conf"),
        blkdebug("d4", FILE, expect="error",
                 **{"inject-error": [{"event": "nope"}]}),
        blkdebug("d4", FILE, expect="error",
                 **{"inject-error": [{"event": "read_aio", "iotype": "sideways"}]}),
        blkdebug("d4", FILE, expect="error", **{"set-state": [{"event": "read_aio"}]}),
        blkdebug("d4", "nothing", expect="error"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q0", "file": "d0"},
             expect="ok"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q1", "file": "d1"},
             expect="ok"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q2", "file": "d2"},
             expect="ok"),
        Step("blockdev-add", {"driver": "raw", "node-name": "r3", "file": "d3"},
             expect="ok"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("query-named-block-nodes", {}, compare_return=True),
        Step("blockdev-del", {"node-name": "d0"}, expect="error"),
        Step("blockdev-del", {"node-name": "q0"}, expect="ok"),
        Step("blockdev-del", {"node-name": "d0"}, expect="ok"),
    ])


# -- injected errors in jobs ----------------------------------------------------------

def _commit_chain(d: Path) -> None:
    qemu.qemu_img("create", "-f", "raw", d / "base.raw", "2M")
    qemu.create(d / "mid.qcow2", "2M", backing=str(d / "base.raw"), backing_fmt="raw")
    qemu.create(d / "top.qcow2", "2M", backing=str(d / "mid.qcow2"), backing_fmt="qcow2")
    qemu.qemu_io(d / "mid.qcow2", "write -P 0x11 0 512k")
    qemu.qemu_io(d / "top.qcow2", "write -P 0x22 0 512k")


def _commit_nodes(faulty: str, event: str) -> list[Cmd]:
    """base.raw (raw) <- mid.qcow2 <- top.qcow2, with a blkdebug node failing ``event``
    once at the first data cluster (sector 512 of the raw file, 1024 of a qcow2)."""
    steps = [Cmd("blockdev-add", {"driver": "file", "node-name": f"{n}-file",
                                  "filename": f"{{dir}}/{n}.{ext}"}, compare_graph=False)
             for n, ext in (("base", "raw"), ("mid", "qcow2"), ("top", "qcow2"))]
    steps.append(Cmd("blockdev-add", {
        "driver": "blkdebug", "node-name": f"{faulty}-dbg", "image": f"{faulty}-file",
        "inject-error": [{"event": event, "sector": 512 if faulty == "base" else 1024,
                          "once": True}]}, compare_graph=False))

    def file(n: str) -> str:
        return f"{n}-dbg" if n == faulty else f"{n}-file"

    steps += [
        Cmd("blockdev-add", {"driver": "raw", "node-name": "base-fmt", "file": file("base")},
            compare_graph=False),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "mid-fmt", "file": file("mid"),
                             "backing": "base-fmt"}, compare_graph=False),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top-fmt", "file": file("top"),
                             "backing": "mid-fmt"}),
    ]
    return steps


@pytest.mark.parametrize("policy", ["report", "ignore", "stop"])
@pytest.mark.parametrize(("active", "faulty", "event"), [
    (True, "top", "read_aio"), (True, "mid", "write_aio"),
    (False, "mid", "read_aio"), (False, "base", "write_aio")])
def test_commit_error_policies(tmp_path: Path, policy: str, active: bool, faulty: str,
                               event: str) -> None:
    """QEMU's commit on-error handling: BLOCK_JOB_ERROR with the operation and action,
    'report' fails the job with nothing counted, 'ignore' retries the chunk, 'stop'
    pauses the job until block-job-resume retries it; then the images agree."""
    steps: list[Any] = [*_commit_nodes(faulty, event), Cmd("block-commit", {
        "job-id": "job0", "device": "top-fmt", "on-error": policy,
        "top-node": "top-fmt" if active else "mid-fmt",
        "base-node": "mid-fmt" if active else "base-fmt"}, compare_graph=False)]
    if policy == "stop":
        steps += [WaitStatus("job0", "paused", compare_graph=False),
                  Cmd("query-block-jobs", compare_graph=False, project=_job_view),
                  Cmd("block-job-resume", {"device": "job0"}, compare_graph=False)]
    if active and policy != "report":
        steps += [WaitStatus("job0", "ready", compare_graph=False),
                  Cmd("block-job-complete", {"device": "job0"}, compare_graph=False)]
    steps.append(WaitStatus("job0", "null"))
    run_jobs(tmp_path, _commit_chain, steps, ("top.qcow2", "mid.qcow2", "base.raw"))


def _job_view(jobs: list[dict[str, Any]]) -> list[Any]:
    return [{k: j[k] for k in ("device", "status", "io-status", "offset", "len", "paused")}
            for j in jobs]


def _stream_chain(d: Path) -> None:
    """top.qcow2 backed by ``blkdebug:CONFIG:base.raw`` (030's TestEIO): the second
    512 KiB read of base.raw fails once."""
    qemu.qemu_img("create", "-f", "raw", d / "base.raw", "2M")
    qemu.qemu_io(d / "base.raw", "write -P 0x33 0 2M", fmt="raw")
    (d / "eio.conf").write_text(
        '[inject-error]\nstate = "1"\nevent = "read_aio"\nerrno = "5"\n'
        'immediately = "off"\nonce = "on"\nsector = "1024"\n\n'
        '[set-state]\nstate = "1"\nevent = "read_aio"\nnew_state = "2"\n\n'
        '[set-state]\nstate = "2"\nevent = "read_aio"\nnew_state = "1"\n')
    qemu.qemu_img("create", "-f", "qcow2", "-F", "raw", "-b",
                  f"blkdebug:{d}/eio.conf:{d}/base.raw", d / "top.qcow2")


@pytest.mark.parametrize("policy", ["report", "ignore", "stop", "enospc"])
def test_stream_through_blkdebug_backing_name(tmp_path: Path, policy: str) -> None:
    """A backing file named ``blkdebug:CONFIG:IMAGE`` opens as QEMU opens it (graph and
    names compared), and a stream through it meets the error with each policy."""
    steps: list[Any] = [
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                             "file": {"driver": "file", "filename": "{dir}/top.qcow2"}}),
        Cmd("query-named-block-nodes", {"flat": True}, compare_graph=False,
            compare_return=True),
        Cmd("block-stream", {"job-id": "s0", "device": "top", "on-error": policy},
            compare_graph=False)]
    if policy == "stop":
        steps += [WaitStatus("s0", "paused", compare_graph=False),
                  Cmd("query-block-jobs", compare_graph=False, project=_job_view),
                  Cmd("block-job-resume", {"device": "s0"}, compare_graph=False)]
    steps.append(WaitStatus("s0", "null"))
    # unless the failed chunk was retried, it still reads through blkdebug, where
    # qemu-img compare would meet the injected error too: compare the allocation
    result = run_jobs(tmp_path, _stream_chain, steps,
                      ("top.qcow2",) if policy == "stop" else ())
    qsd, engine = (_layers(result.dirs[peer] / "top.qcow2") for peer in ("qsd", "engine"))
    assert qsd == engine


def _layers(image: Path) -> list[tuple[int, int, int]]:
    """Which layer holds each range (``qemu-img map``, reading no data)."""
    return [(m["start"], m["length"], m["depth"]) for m in qemu.map_json(image)]


def test_blkdebug_reopen(tmp_path: Path) -> None:
    """blockdev-reopen of a blkdebug node: its child and read-only state change, its
    rules stay as they were opened."""
    def reopen(**opts: Any) -> Step:
        return Step("blockdev-reopen", {"options": [{"driver": "blkdebug",
                                                     "node-name": "d", **opts}]})

    run_scenario(tmp_path, _images, [
        Step("blockdev-add", {"driver": "file", "node-name": "f0",
                              "filename": "{dir}/top.qcow2"}, expect="ok"),
        Step("blockdev-add", {"driver": "file", "node-name": "f1",
                              "filename": "{dir}/top1.qcow2"}, expect="ok"),
        blkdebug("d", "f0", expect="ok",
                 **{"inject-error": [{"event": "read_aio", "errno": 28}]}),
        reopen(image="f0", **{"read-only": True}),
        reopen(image="f1"),
        reopen(),
        reopen(image="f1", config="{dir}/rules.conf"),
        reopen(image="f1", **{"inject-error": [{"event": "write_aio"}]}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
    ])

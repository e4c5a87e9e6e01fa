"""Jobs on overlapping parts of one chain, against qemu-system-x86_64 7.2.

The chain is the one QEMU's stream tests use for parallel jobs: nine images opened
by one ``-drive`` (``drive0``, node names ``node0``…``node8`` given through
``backing.…node-name``), the odd layers holding data. One job runs (stalled at a
speed of one byte a second) while others are asked for on nodes it holds. QEMU's
refusals name the first busy node down the chain — a job's filter node, or the drive
by its id when it is the drive's own node (``bdrv_get_device_or_node_name``) — and
file names given as ``base``/``top`` are found through the job's filters (each
overlay names the layer below by its header). A stream that has to reopen its
read-only device first freezes the chain down to its base and so refuses a commit
filter in it. Replies and graphs are compared after every step, then the running
job is let go and both peers finish it the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.cmdline_peers import engine_peer, qemu_system_peer, until
from tests.jobs.jobdiff import event_sequence
from tests.support.differential import Step, run_scenario
from tests.support.qemu import check, compare, create, qemu_img, qemu_io

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]

LAYERS = 9


def chain(d: Path) -> None:
    """img-0 (raw) <- img-1 <- … <- img-8 (qcow2), 4 MiB; odd layers hold data."""
    qemu_img("create", "-q", "-f", "raw", d / "img-0.img", "4M")
    for i in range(1, LAYERS):
        create(d / f"img-{i}.img", "4M", backing=str(d / f"img-{i - 1}.img"),
               backing_fmt="raw" if i == 1 else "qcow2")
    for i in range(1, LAYERS, 2):
        qemu_io(d / f"img-{i}.img", f"write -P 0xff {i // 2 * 512}k 512k")


def drive(d: Path) -> list[str]:
    names = ",".join("backing." * (LAYERS - 1 - i) + f"node-name=node{i}"
                     for i in range(LAYERS))
    return ["-drive", f"if=virtio,id=drive0,file={d}/img-{LAYERS - 1}.img,format=qcow2,"
                      f"cache=writeback,aio=threads,{names}"]


def img(i: int) -> str:
    return f"{{dir}}/img-{i}.img"


def busy(command: str, **args: Any) -> Step:
    return Step(command, {k.replace("_", "-"): v for k, v in args.items()}, expect="error")


def run(tmp_path: Path, job: Step, job_id: str, refused: list[Step]) -> list[Any]:
    """Start ``job`` stalled, try ``refused`` beside it, then let it finish."""
    peers: dict[str, Any] = {}

    def keep(name: str, factory: Any) -> Any:
        def make(d: Path) -> Any:
            peers[name] = factory(d)
            return peers[name]
        return make

    steps = [job, *refused,
             Step("block-job-set-speed", {"device": job_id, "speed": 0}, compare_graph=False,
                  after=until("null", job_id)),
             Step("query-block", {})]
    results = run_scenario(tmp_path, chain, steps, peers=[
        ("qemu-system", keep("qemu-system", qemu_system_peer(drive))),
        ("engine", keep("engine", engine_peer(drive)))])
    sequences = {name: event_sequence(p.events) for name, p in peers.items()}
    assert sequences["engine"] == sequences["qemu-system"], sequences
    qd, ed = tmp_path / "qemu-system", tmp_path / "engine"
    for i in range(1, LAYERS):
        image = f"img-{i}.img"
        assert compare(qd / image, ed / image), f"{image}: guest content differs"
        check(ed / image)
    return [r.replies for r in results]


def test_a_stream_blocks_what_it_holds(tmp_path: Path) -> None:
    replies = run(tmp_path, Step("block-stream", {
        "device": "node4", "job-id": "stream-node4", "base": img(1),
        "filter-node-name": "stream-filter", "speed": 1}, expect="ok"), "stream-node4", [
        busy("block-stream", device="node5", job_id="stream-node5", base=img(2)),
        busy("block-stream", device="node3", job_id="stream-node3", base=img(2)),
        busy("block-stream", device="node4", job_id="stream-node4-v2"),
        busy("block-commit", device="drive0", base=img(4), job_id="commit-node4"),
        busy("block-commit", device="drive0", base=img(1), top=img(3), job_id="commit-node1"),
        busy("block-commit", device="drive0", base=img(0), top=img(1), job_id="commit-node0"),
    ])
    # the filter in the chain is named, and found through: base img-4 lies below it
    assert replies[4][1]["error"]["desc"] == \
        "Node 'stream-filter' is busy: block device is in use by block job: stream"


def test_a_commit_blocks_what_it_holds_and_names_the_drive(tmp_path: Path) -> None:
    replies = run(tmp_path, Step("block-commit", {
        "device": "drive0", "top": img(5), "base": img(3), "job-id": "commit-node3",
        "speed": 1}, expect="ok"), "commit-node3", [
        busy("block-stream", device="node3", job_id="stream-node3"),
        busy("block-stream", device="node6", base=img(2), job_id="stream-node6"),
        busy("block-stream", device="node4", base=img(2), job_id="stream-node4"),
        busy("block-stream", device="node6", base=img(4), job_id="stream-node6-v2"),
        busy("block-stream", device="drive0", base=img(5), job_id="stream-drive0"),
    ])
    assert replies[5][1]["error"]["desc"] == \
        "Node 'drive0' is busy: block device is in use by block job: commit"


def test_a_stream_cannot_freeze_a_chain_through_a_commit_filter(tmp_path: Path) -> None:
    replies = run(tmp_path, Step("block-commit", {
        "device": "drive0", "top": img(2), "base": img(0),
        "filter-node-name": "commit-filter", "speed": 1}, expect="ok"), "drive0", [
        busy("block-stream", device="node4", base_node="node2", job_id="node4"),
    ])
    assert replies[1][1]["error"]["desc"] == "Cannot freeze 'backing' link to 'commit-filter'"

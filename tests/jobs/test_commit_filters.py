"""Commit through filters inside a chain, against qemu-storage-daemon 7.2.

A throttle filter (the kind libvirt puts on disks with I/O limits) sits on top of a
chain and another one between two layers. Committing across the inner filter takes
it away with the layer above it; the job shares consistent read on the inner filter
(from the base's overlay's backing child down everything is only a filter on the
base), so the job's own reader of the base does not conflict with it. Replies,
graphs, events and the images (header, allocation, content, ``qemu-img check``) are
compared with QEMU's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

IMAGES = ("0.img", "1.img", "2.img", "3.img")


def images(d: Path) -> None:
    """Four unrelated 4 MiB images, image N holding pattern N+1 at N MiB."""
    for i, name in enumerate(IMAGES):
        create(d / name, "4M")
        qemu_io(d / name, f"write -P {i + 1} {i}M 1M")


def qcow2(name: str, image: str, backing: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"node-name": name, "driver": "qcow2",
                            "file": {"driver": "file", "filename": f"{{dir}}/{image}"}}
    if backing is not None:
        node["backing"] = backing
    return node


def throttle(name: str, child: dict[str, Any]) -> dict[str, Any]:
    return {"node-name": name, "driver": "throttle", "throttle-group": "tg", "file": child}


def setup_steps() -> list[Cmd]:
    """top-filter -> cow-3 -> cow-2 -> cow-1 -> bottom-filter -> cow-0."""
    chain = throttle("top-filter", qcow2("cow-3", "3.img", qcow2("cow-2", "2.img", qcow2(
        "cow-1", "1.img", throttle("bottom-filter", qcow2("cow-0", "0.img"))))))
    return [Cmd("object-add", {"qom-type": "throttle-group", "id": "tg"}),
            Cmd("blockdev-add", chain)]


def commit(top: str, base: str, backing_file: str) -> list[Cmd | WaitStatus]:
    return [Cmd("block-commit", {"job-id": "commit", "device": "top-filter",
                                 "top-node": top, "base-node": base,
                                 "backing-file": backing_file}, compare_graph=False),
            WaitStatus("commit", "null"),
            Cmd("query-named-block-nodes", {"flat": True},
                project=lambda nodes: sorted(n["node-name"] for n in nodes))]


def test_commit_through_a_filter_between_layers(tmp_path: Path) -> None:
    run_jobs(tmp_path, images, [*setup_steps(), *commit("cow-1", "cow-0", "{dir}/0.img")],
             IMAGES)


def test_commit_above_the_filter(tmp_path: Path) -> None:
    run_jobs(tmp_path, images, [*setup_steps(), *commit("cow-2", "cow-1", "{dir}/1.img")],
             IMAGES)

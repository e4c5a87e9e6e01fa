"""``block-commit`` with ``top`` and ``base`` given as file names, against
qemu-storage-daemon 7.2.

QEMU takes ``top`` equal to the device's own filename as the active layer; any
other name is looked for down the chain (``bdrv_find_backing_image``): each overlay
names the layer below it by its header string — compared as written when either
name has a protocol prefix, else as canonical paths, relative names taken against
the overlay's directory — or, when the overlay's backing was overridden at open
(another image than its header names), by that backing node's filename only.
Replies (error texts included), graphs, events and the images are compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

CHAIN = ("base.qcow2", "mid.qcow2", "top.qcow2")


def relative_chain(d: Path) -> None:
    """base <- mid <- top, each header naming the layer below by a relative name."""
    create(d / "base.qcow2", "1M")
    qemu_io(d / "base.qcow2", "write -P 0xab 0 512k")
    create(d / "mid.qcow2", "1M", backing="base.qcow2")
    qemu_io(d / "mid.qcow2", "write -P 0xef 512k 512k")
    create(d / "top.qcow2", "1M", backing="mid.qcow2")


def open_top() -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                "file": {"driver": "file", "filename": "{dir}/top.qcow2"}})


def commit(**args: Any) -> Cmd:
    return Cmd("block-commit", {"job-id": "commit", "device": "top", **args},
               compare_graph=False)


def finish_active() -> list[Cmd | WaitStatus]:
    return [WaitStatus("commit", "ready"), Cmd("job-complete", {"id": "commit"},
                                               compare_graph=False),
            WaitStatus("commit", "null")]


def test_top_named_by_the_active_layers_filename(tmp_path: Path) -> None:
    run_jobs(tmp_path, relative_chain, [
        open_top(),
        commit(top="{dir}/top.qcow2", base="{dir}/base.qcow2"),
        *finish_active(),
    ], CHAIN)


def test_names_relative_to_the_overlays_directory(tmp_path: Path) -> None:
    run_jobs(tmp_path, relative_chain, [
        open_top(),
        commit(top="top.qcow2"),                     # not the filename: looked for below
        commit(top="mid.qcow2", base="nothing.qcow2"),
        commit(top="file:{dir}/mid.qcow2"),          # a protocol: compared as written
        commit(top="{dir}/./mid.qcow2", base="base.qcow2"),
        WaitStatus("commit", "null"),
    ], CHAIN)


def overridden(d: Path) -> None:
    """top's header names base_a; it is opened over base_b instead."""
    create(d / "base_a.img", "1M")
    create(d / "base_b.img", "1M")
    qemu_io(d / "base_b.img", "write -P 0x11 0 64k")
    create(d / "top.img", "1M", backing=str(d / "base_a.img"))
    qemu_io(d / "top.img", "write -P 0x22 64k 64k")


def open_over_base_b() -> Cmd:
    return Cmd("blockdev-add", {
        "node-name": "top", "driver": "qcow2",
        "file": {"driver": "file", "filename": "{dir}/top.img"},
        "backing": {"node-name": "base", "driver": "qcow2",
                    "file": {"driver": "file", "filename": "{dir}/base_b.img"}}})


def test_overridden_backing_is_named_by_its_filename_only(tmp_path: Path) -> None:
    run_jobs(tmp_path, overridden, [
        open_over_base_b(),
        commit(base="{dir}/base_a.img"),     # what the header names: not in the chain
        commit(base="{dir}/base_b.img"),
        *finish_active(),
    ], ("base_a.img", "base_b.img", "top.img"))

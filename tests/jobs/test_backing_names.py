"""Backing names: what the engine opens from a header and what jobs write into one,
against qemu-storage-daemon 7.2 (graphs, queries, header fields, guest content)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.formats.create import create_qcow2
from tests.jobs.jobdiff import Cmd, WaitStatus, image_fields, named_chain, run_jobs
from tests.support.qemu import create, qemu_img, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20
NAMES = Cmd("query-named-block-nodes", {"flat": True},
            project=image_fields("filename", "virtual-size", "backing-filename",
                                 "full-backing-filename", "backing-filename-format"))
DEEP = Cmd("query-named-block-nodes", {}, compare_graph=False,
           project=lambda nodes: [n["image"].get("backing-image", {}).get("filename")
                                  for n in nodes] if isinstance(nodes, list) else nodes)


def json_name(options: dict[str, Any]) -> str:
    return "json:" + json.dumps(options)


def add_top(**extra: Any) -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                "file": {"driver": "file", "filename": "{dir}/top.qcow2"},
                                **extra})


def done(job: str) -> WaitStatus:
    return WaitStatus(job, "null")


def json_qcow2_backing(d: Path) -> None:
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 5 0 256k")
    name = json_name({"driver": "qcow2", "file": {"driver": "file",
                                                  "filename": str(d / "base.qcow2")}})
    qemu_img("create", "-q", "-f", "qcow2", "-b", name, "-F", "qcow2", str(d / "top.qcow2"),
             str(MiB))
    qemu_io(d / "top.qcow2", "write -P 6 128k 64k")


def test_a_header_naming_a_json_backing_opens(tmp_path: Path) -> None:
    run_jobs(tmp_path, json_qcow2_backing, [
        add_top(), NAMES, DEEP,
        Cmd("block-stream", {"job-id": "s0", "device": "top"}, compare_graph=False),
        done("s0"),
        NAMES,
    ], ("top.qcow2", "base.qcow2"))


def json_raw_window(d: Path) -> None:
    create(d / "disk.raw", 3 * MiB, fmt="raw")
    qemu_io(d / "disk.raw", "write -P 1 0 1M", "write -P 2 1M 1M", fmt="raw")
    name = json_name({"driver": "raw", "offset": MiB, "size": MiB,
                      "file": {"driver": "file", "filename": str(d / "disk.raw")}})
    qemu_img("create", "-q", "-f", "qcow2", "-b", name, "-F", "raw", str(d / "top.qcow2"),
             str(MiB))


def test_a_json_backing_that_is_a_raw_window(tmp_path: Path) -> None:
    run_jobs(tmp_path, json_raw_window, [
        add_top(), NAMES,
        Cmd("block-stream", {"job-id": "s0", "device": "top"}, compare_graph=False),
        done("s0"),
    ], ("top.qcow2",))


def json_with_its_own_backing(d: Path) -> None:
    """What QEMU writes for a snapshot of a node whose backing was overridden: a json
    name whose options hold a ``backing`` of their own (qemu-img cannot follow it)."""
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 7 0 128k")
    create(d / "mid.qcow2", MiB)          # no backing in its own header
    qemu_io(d / "mid.qcow2", "write -P 8 64k 64k")
    name = json_name({"backing": {"driver": "qcow2", "file": {
        "driver": "file", "filename": str(d / "base.qcow2")}}, "driver": "qcow2",
        "file": {"driver": "file", "filename": str(d / "mid.qcow2")}})
    create_qcow2(d / "top.qcow2", MiB, backing_file=name, backing_format="qcow2")


def test_a_json_backing_with_a_backing_of_its_own(tmp_path: Path) -> None:
    run_jobs(tmp_path, json_with_its_own_backing, [
        add_top(), NAMES, DEEP,
        Cmd("block-stream", {"job-id": "s0", "device": "top"}, compare_graph=False),
        done("s0"),
    ], ("top.qcow2",))


def chain(d: Path) -> None:
    create(d / "base.qcow2", 2 * MiB)
    qemu_io(d / "base.qcow2", "write -P 1 0 1M")
    create(d / "mid.qcow2", 2 * MiB, backing=str(d / "base.qcow2"))
    qemu_io(d / "mid.qcow2", "write -P 2 512k 512k")
    create(d / "top.qcow2", 2 * MiB, backing=str(d / "mid.qcow2"))
    qemu_io(d / "top.qcow2", "write -P 3 1M 256k")


IMAGES = ("top.qcow2", "mid.qcow2", "base.qcow2")


def test_stream_with_a_named_filter_and_a_backing_name(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add_top(),
        Cmd("block-stream", {"job-id": "s0", "device": "top", "base": "{dir}/base.qcow2",
                             "filter-node-name": "cor", "backing-file": "base.qcow2"},
            compare_graph=False),
        done("s0"), NAMES,
    ], IMAGES)


def test_stream_with_a_named_filter_to_the_bottom(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add_top(),
        Cmd("block-stream", {"job-id": "s0", "device": "top", "filter-node-name": "cor"},
            compare_graph=False),
        done("s0"), NAMES,
    ], IMAGES)


def test_commit_with_a_backing_name(tmp_path: Path) -> None:
    run_jobs(tmp_path, chain, [
        add_top(),
        Cmd("block-commit", {"job-id": "c0", "device": "top", "top": "{dir}/mid.qcow2",
                             "backing-file": "./base.qcow2",
                             "filter-node-name": "ct"}, compare_graph=False),
        done("c0"), NAMES,
    ], ("top.qcow2", "base.qcow2"))


def test_names_of_a_chain_whose_backing_was_overridden(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        chain(d)
        create(d / "other.qcow2", 2 * MiB)

    run_jobs(tmp_path, setup, [
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "other", "read-only": True,
                             "file": {"driver": "file", "filename": "{dir}/other.qcow2"}}),
        add_top(),
        Cmd("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "top", "backing": "other",
            "file": "{node-file:top.qcow2}"}]}, compare_graph=False),
        NAMES, DEEP,
        # the overlay has no user to take over, so only its file remains
        Cmd("blockdev-snapshot-sync", {"node-name": "top", "snapshot-file": "{dir}/s.qcow2",
                                       "snapshot-node-name": "s"}),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "s2", "read-only": True,
                             "file": {"driver": "file", "filename": "{dir}/s.qcow2"}}),
        NAMES, DEEP,
    ], ("s.qcow2", "top.qcow2"))


DETACH_BASE = Cmd("blockdev-reopen", {"options": [{
    "driver": "qcow2", "node-name": "mid", "file": "mid-file", "backing": None}]})


def backing_chain(image: Path) -> list[dict[str, Any]]:
    """``qemu-img info --backing-chain`` of ``image``: it fails if a name does not open."""
    return json.loads(qemu_img("info", "--output=json", "--backing-chain",
                               str(image)).stdout)


@pytest.mark.parametrize("base_node", [None, "mid"])
def test_stream_after_the_base_was_detached(tmp_path: Path, base_node: str | None) -> None:
    """The base detached below the middle layer: a stream of the whole chain leaves the
    top with no backing name at all; a stream down to the middle layer names it as
    QEMU does (a ``json:`` name that says it has no backing), and qemu-img opens it."""
    args: dict[str, Any] = {"job-id": "s0", "device": "top"}
    if base_node is not None:
        args["base-node"] = base_node
    result = run_jobs(tmp_path, chain, [
        *named_chain(), DETACH_BASE,
        Cmd("block-stream", args, compare_graph=False), done("s0"), NAMES,
    ], IMAGES)
    ours, qemus = (backing_chain(result.dirs[p] / "top.qcow2") for p in ("engine", "qsd"))
    if base_node is None:
        assert len(ours) == 1 and "backing-filename" not in ours[0]
    else:
        assert "mid.qcow2" in ours[1]["filename"]
        assert json.loads(ours[0]["backing-filename"].removeprefix("json:"))["backing"] is None
    dirs = {p: str(d) for p, d in result.dirs.items()}
    assert ours[0].get("backing-filename", "").replace(dirs["engine"], "{dir}") == \
        qemus[0].get("backing-filename", "").replace(dirs["qsd"], "{dir}")

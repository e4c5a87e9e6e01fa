"""Reads and writes go through each node's current children, against qemu-storage-daemon.

A job's data is what its nodes read *now*: after a ``blockdev-reopen`` replaced a
``file`` child, after two nodes swapped their files, through a raw window
(``offset``/``size``). Each scenario runs on both peers; the images a job wrote are
compared afterwards (header fields, allocation, guest content, ``qemu-img check``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, image_fields, run_jobs
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20


def file_node(name: str, image: str) -> Cmd:
    return Cmd("blockdev-add", {"driver": "file", "node-name": name,
                                "filename": "{dir}/" + image})


def qcow2(name: str, image: str, **extra: Any) -> Cmd:
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": name,
                                "file": {"driver": "file", "filename": "{dir}/" + image,
                                         "node-name": name + "-file"}, **extra})


def reopen(*options: dict[str, Any]) -> Cmd:
    return Cmd("blockdev-reopen", {"options": list(options)})


def stream(device: str, job: str = "s0", **extra: Any) -> list[Any]:
    return [Cmd("block-stream", {"job-id": job, "device": device, **extra},
                compare_graph=False),
            WaitStatus(job, "null")]


SIZES = Cmd("query-named-block-nodes", {"flat": True},
            project=image_fields("virtual-size", "filename", "format", "cluster-size"))


def two_raw_files(d: Path) -> None:
    for i, pattern in ((0, "0xa0"), (1, "0xa1")):
        create(d / f"hd{i}.raw", MiB, fmt="raw")
        qemu_io(d / f"hd{i}.raw", f"write -P {pattern} 0 {MiB}", fmt="raw")
    create(d / "top.qcow2", MiB)


def test_a_replaced_file_child_is_read_from_the_next_request(tmp_path: Path) -> None:
    run_jobs(tmp_path, two_raw_files, [
        file_node("hd0-file", "hd0.raw"),
        file_node("hd1-file", "hd1.raw"),
        Cmd("blockdev-add", {"driver": "raw", "node-name": "hd", "file": "hd0-file"}),
        reopen({"driver": "raw", "node-name": "hd", "file": "hd1-file"}),
        qcow2("top", "top.qcow2", backing="hd"),
        *stream("top"),
        SIZES,
    ], ("top.qcow2", "hd0.raw", "hd1.raw"))


def test_a_file_child_replaced_back_and_forth(tmp_path: Path) -> None:
    run_jobs(tmp_path, two_raw_files, [
        file_node("hd0-file", "hd0.raw"),
        file_node("hd1-file", "hd1.raw"),
        Cmd("blockdev-add", {"driver": "raw", "node-name": "hd", "file": "hd0-file"}),
        reopen({"driver": "raw", "node-name": "hd", "file": "hd1-file"}),
        reopen({"driver": "raw", "node-name": "hd", "file": "hd0-file"}),
        qcow2("top", "top.qcow2", backing="hd"),
        *stream("top"),
    ], ("top.qcow2",))


def two_qcow2_images(d: Path) -> None:
    for name, pattern in (("a", "0x11"), ("b", "0x22")):
        create(d / f"{name}.qcow2", 2 * MiB)
        qemu_io(d / f"{name}.qcow2", f"write -P {pattern} 0 1M")
    create(d / "top.qcow2", 2 * MiB)


def test_two_nodes_swap_their_files(tmp_path: Path) -> None:
    a = {"driver": "qcow2", "node-name": "a", "file": "b-file", "backing": None}
    b = {"driver": "qcow2", "node-name": "b", "file": "a-file", "backing": None}
    run_jobs(tmp_path, two_qcow2_images, [
        qcow2("a", "a.qcow2", backing=None),
        qcow2("b", "b.qcow2", backing=None),
        reopen(a, b),
        qcow2("top", "top.qcow2", backing="a"),
        *stream("top"),
        SIZES,
    ], ("top.qcow2", "a.qcow2", "b.qcow2"))


def test_commit_writes_through_a_replaced_file_child(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        two_qcow2_images(d)
        qemu_io(d / "top.qcow2", "write -P 0x33 512k 1M")

    run_jobs(tmp_path, setup, [
        qcow2("a", "a.qcow2", backing=None, **{"read-only": True}),
        file_node("b-file", "b.qcow2"),
        reopen({"driver": "qcow2", "node-name": "a", "file": "b-file", "backing": None,
                "read-only": True}),
        qcow2("top", "top.qcow2", backing="a"),
        Cmd("block-commit", {"job-id": "c0", "device": "top"}, compare_graph=False),
        WaitStatus("c0", "ready"),
        Cmd("job-complete", {"id": "c0"}, compare_graph=False),
        WaitStatus("c0", "null"),
    ], ("a.qcow2", "b.qcow2"))


def striped_raw(d: Path) -> None:
    create(d / "disk.raw", 4 * MiB, fmt="raw")
    qemu_io(d / "disk.raw", *(f"write -P {i + 1} {i}M 1M" for i in range(4)), fmt="raw")
    create(d / "top.qcow2", MiB)
    create(d / "data.qcow2", MiB)
    qemu_io(d / "data.qcow2", "write -P 0x77 64k 256k")


def raw_window(name: str, offset: int, size: int | None = None) -> Cmd:
    opts: dict[str, Any] = {"driver": "raw", "node-name": name, "offset": offset,
                            "file": {"driver": "file", "filename": "{dir}/disk.raw"}}
    if size is not None:
        opts["size"] = size
    return Cmd("blockdev-add", opts)


def test_a_raw_window_is_its_size_and_its_bytes(tmp_path: Path) -> None:
    run_jobs(tmp_path, striped_raw, [
        raw_window("win", MiB, MiB),
        SIZES,
        qcow2("top", "top.qcow2", backing="win"),
        *stream("top"),
    ], ("top.qcow2", "disk.raw"))


def test_a_raw_window_without_size_runs_to_the_end(tmp_path: Path) -> None:
    run_jobs(tmp_path, striped_raw, [
        raw_window("win", 3 * MiB),
        SIZES,
        qcow2("top", "top.qcow2", backing="win"),
        *stream("top"),
    ], ("top.qcow2",))


def test_commit_into_a_raw_window_writes_inside_it(tmp_path: Path) -> None:
    run_jobs(tmp_path, striped_raw, [
        raw_window("win", 2 * MiB, MiB),
        qcow2("data", "data.qcow2", backing="win"),
        Cmd("block-commit", {"job-id": "c0", "device": "data"}, compare_graph=False),
        WaitStatus("c0", "ready"),
        Cmd("job-complete", {"id": "c0"}, compare_graph=False),
        WaitStatus("c0", "null"),
    ], ("disk.raw",))


def test_raw_windows_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    run_jobs(tmp_path, striped_raw, [
        raw_window("w1", 3 * MiB, 2 * MiB),
        raw_window("w2", 5 * MiB),
        raw_window("w3", 5 * MiB, 0),
        raw_window("w4", 0, 1000),
        raw_window("w5", 4 * MiB, 0),
        raw_window("w6", 4 * MiB),
        SIZES,
    ])


def test_reopen_moves_a_raw_window(tmp_path: Path) -> None:
    run_jobs(tmp_path, striped_raw, [
        file_node("disk", "disk.raw"),
        Cmd("blockdev-add", {"driver": "raw", "node-name": "win", "file": "disk",
                             "offset": 0, "size": MiB}),
        reopen({"driver": "raw", "node-name": "win", "file": "disk", "offset": 3 * MiB,
                "size": MiB}),
        SIZES,
        reopen({"driver": "raw", "node-name": "win", "file": "disk", "offset": 3 * MiB,
                "size": 2 * MiB}),
        SIZES,
        qcow2("top", "top.qcow2", backing="win"),
        *stream("top"),
    ], ("top.qcow2",))


def test_commit_into_a_smaller_raw_window_fails_like_qemu(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        striped_raw(d)
        create(d / "big.qcow2", 2 * MiB)
        qemu_io(d / "big.qcow2", "write -P 0x55 0 2M")

    run_jobs(tmp_path, setup, [
        raw_window("win", MiB, MiB),
        qcow2("big", "big.qcow2", backing="win"),
        Cmd("block-commit", {"job-id": "c0", "device": "big"}, compare_graph=False),
        WaitStatus("c0", "null"),
        SIZES,
    ], ("disk.raw",))


def deep_chain(d: Path, depth: int = 6) -> None:
    """l0 <- l1 <- ... <- l{depth-1}, each layer writing its own 64k stripe."""
    for i in range(depth):
        backing = {"backing": str(d / f"l{i - 1}.qcow2")} if i else {}
        create(d / f"l{i}.qcow2", MiB, **backing)  # type: ignore[arg-type]
        qemu_io(d / f"l{i}.qcow2", f"write -P {i + 1} {i * 64}k 128k")


LAYERS = tuple(f"l{i}.qcow2" for i in range(6))


def test_intermediate_commit_in_a_chain_opened_from_headers(tmp_path: Path) -> None:
    run_jobs(tmp_path, deep_chain, [
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                             "file": {"driver": "file", "filename": "{dir}/l5.qcow2"}}),
        Cmd("block-commit", {"job-id": "c0", "device": "top", "top-node": "{node:l3.qcow2}",
                             "base-node": "{node:l1.qcow2}"}, compare_graph=False),
        WaitStatus("c0", "null"),
        Cmd("block-commit", {"job-id": "c1", "device": "top", "top-node": "{node:l4.qcow2}",
                             "base": "{dir}/l0.qcow2"}, compare_graph=False),
        WaitStatus("c1", "null"),
    ], LAYERS)


def test_stream_an_intermediate_range_of_a_chain_opened_from_headers(tmp_path: Path) -> None:
    run_jobs(tmp_path, deep_chain, [
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "top",
                             "file": {"driver": "file", "filename": "{dir}/l5.qcow2"}}),
        Cmd("block-stream", {"job-id": "s0", "device": "{node:l3.qcow2}",
                             "base-node": "{node:l1.qcow2}"}, compare_graph=False),
        WaitStatus("s0", "null"),
        *stream("top", job="s1", **{"base": "{dir}/l0.qcow2"}),
    ], LAYERS)

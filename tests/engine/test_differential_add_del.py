"""blockdev-add / blockdev-del and argument checking on qemu-storage-daemon 7.2 and on
the engine, step by step (spec §0.4, §1.2–§1.8, §2, §6.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.qemu import create

pytestmark = pytest.mark.qemu


def images(d: Path) -> None:
    create(d / "base.qcow2", "1M")
    create(d / "mid.qcow2", "1M", backing="base.qcow2")
    create(d / "top.qcow2", "1M", backing="mid.qcow2")
    create(d / "abs.qcow2", "1M", backing=str(d / "base.qcow2"))
    create(d / "gone.qcow2", "1M")
    create(d / "missing.qcow2", "1M", backing="gone.qcow2")
    (d / "gone.qcow2").unlink()
    create(d / "disk.raw", "1M", fmt="raw")
    create(d / "spare.qcow2", "1M")


def file_opts(image: str, **extra: object) -> dict:
    return {"driver": "file", "filename": f"{{dir}}/{image}", **extra}


def add(opts: dict) -> Step:
    return Step("blockdev-add", opts)


def test_add_chains_names_and_filenames(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        add({"driver": "qcow2", "node-name": "top", "file": file_opts("top.qcow2")}),
        Step("query-named-block-nodes", {"flat": False}),
        add({"driver": "qcow2", "node-name": "abs", "read-only": True,
             "file": file_opts("abs.qcow2")}),
        add({"driver": "file", "node-name": "mf", "filename": "{dir}/mid.qcow2",
             "read-only": True}),
        add({"driver": "qcow2", "node-name": "mid2", "file": "mf", "read-only": True,
             "backing": None}),
        add({"driver": "null-co", "node-name": "n0"}),
        add({"driver": "null-co", "node-name": "n1", "size": 1 << 30}),
        add({"driver": "null-aio", "node-name": "n2", "read-zeroes": True}),
        add({"driver": "null-co", "node-name": "n3", "latency-ns": 5}),
        add({"driver": "raw", "node-name": "r0", "file": file_opts("disk.raw")}),
        add({"driver": "raw", "node-name": "r1", "file": "n0", "offset": 4096}),
        add({"driver": "raw", "node-name": "r2", "file": "mid2"}),
        Step("blockdev-del", {"node-name": "r2"}),
        Step("blockdev-del", {"node-name": "top"}),
        Step("blockdev-del", {"node-name": "r1"}),
    ])


def test_add_backing_options(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        add({"driver": "qcow2", "node-name": "base", "read-only": True,
             "file": file_opts("base.qcow2")}),
        add({"driver": "qcow2", "node-name": "mid", "backing": "base",
             "file": file_opts("mid.qcow2")}),        # relative header: json: filename
        add({"driver": "qcow2", "node-name": "abs", "backing": "base",
             "file": file_opts("abs.qcow2")}),        # absolute header naming base: plain
        add({"driver": "qcow2", "node-name": "top", "backing": {
            "driver": "qcow2", "node-name": "mid-inline", "backing": None,
            "file": file_opts("mid.qcow2", **{"read-only": True})},
            "file": file_opts("top.qcow2")}),
        add({"driver": "qcow2", "node-name": "top", "backing": {
            "driver": "qcow2", "node-name": "mid-inline", "backing": None,
            "file": file_opts("base.qcow2")}, "file": file_opts("top.qcow2")}),
        add({"driver": "qcow2", "node-name": "x1", "backing": "nonexist",
             "file": file_opts("spare.qcow2")}),
        add({"driver": "qcow2", "node-name": "x1", "backing": "x1",
             "file": file_opts("spare.qcow2")}),
        add({"driver": "qcow2", "node-name": "x2", "file": file_opts("missing.qcow2")}),
        add({"driver": "qcow2", "node-name": "x3", "backing": None,
             "file": file_opts("nofile.qcow2")}),
        add({"driver": "qcow2", "node-name": "x4", "file": file_opts("disk.raw")}),
        add({"driver": "qcow2", "node-name": "x5", "file": {"driver": "null-co"}}),
        Step("blockdev-del", {"node-name": "base"}),       # backing of abs (newest) and mid
        Step("blockdev-del", {"node-name": "mid-inline"}),
        Step("blockdev-del", {"node-name": "top"}),
        Step("blockdev-del", {"node-name": "abs"}),
        Step("blockdev-del", {"node-name": "mid"}),
        Step("blockdev-del", {"node-name": "base"}),
    ])


def test_locking_and_permission_conflicts(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        add({"driver": "qcow2", "node-name": "a", "backing": None,
             "file": file_opts("base.qcow2", **{"node-name": "a-file"})}),
        add({"driver": "qcow2", "node-name": "b", "backing": None,
             "file": file_opts("base.qcow2")}),                  # second writer
        add({"driver": "qcow2", "node-name": "c", "backing": None, "read-only": True,
             "file": file_opts("base.qcow2")}),                  # reader vs writer
        add({"driver": "qcow2", "node-name": "d", "backing": None, "read-only": True,
             "force-share": True, "file": file_opts("base.qcow2")}),
        add({"driver": "qcow2", "node-name": "e", "force-share": True,
             "file": file_opts("base.qcow2")}),
        add({"driver": "qcow2", "node-name": "m", "file": file_opts("mid.qcow2")}),
        # a's file node is taken by a second format node
        add({"driver": "qcow2", "node-name": "a2", "read-only": True, "backing": None,
             "file": "a-file"}),
        add({"driver": "file", "node-name": "af", "filename": "{dir}/top.qcow2"}),
        add({"driver": "qcow2", "node-name": "t1", "backing": None, "file": "af"}),
        add({"driver": "qcow2", "node-name": "t2", "backing": None, "read-only": True,
             "file": "af"}),
        add({"driver": "raw", "node-name": "t3", "file": "af"}),
        add({"driver": "raw", "node-name": "t4", "file": "af", "offset": 512}),
        add({"driver": "raw", "node-name": "r0", "file": file_opts("disk.raw")}),
        add({"driver": "raw", "node-name": "r1", "offset": 512,
             "file": file_opts("disk.raw", **{"read-only": True})}),
        add({"driver": "file", "node-name": "rf", "read-only": True,
             "filename": "{dir}/abs.qcow2"}),
        add({"driver": "qcow2", "node-name": "rw-on-ro", "backing": None, "file": "rf"}),
    ])


def test_names_and_malformed_arguments(tmp_path: Path) -> None:
    bad = [
        {"driver": "qcow2", "node-name": "1x", "file": file_opts("base.qcow2")},
        {"driver": "null-co", "node-name": "a b"},
        {"driver": "null-co", "node-name": "#abc"},
        {"driver": "null-co", "node-name": ""},
        {"driver": "null-co", "node-name": "x" * 32},
        {"driver": "null-co", "node-name": "x" * 31},
        {"driver": "null-co", "node-name": "x" * 31},
        {"driver": "qcow2", "file": "nonexist"},
        {"driver": "qcow2", "node-name": "q"},
        {"driver": "qcow2", "node-name": "q", "file": 5},
        {"driver": "qcow2", "node-name": "q", "file": "nonexist"},
        {"driver": "qcow2", "node-name": "q", "file": {"driver": "file"}},
        {"driver": "qcow2", "node-name": "q", "file": {"driver": "file", "filename": 3}},
        {"driver": "qcow2", "node-name": "q", "file": {"driver": "foo"}},
        {"driver": "qcow2", "node-name": "q", "bogus": 1, "file": "x"},
        {"driver": "raw", "node-name": "q", "file": "x", "backing": None},
        {"driver": "foo", "node-name": "q"},
        {"node-name": "q"},
        {"driver": "null-co", "node-name": "q", "read-only": "yes"},
        {"driver": "null-co", "node-name": "q", "size": 1.5},
        {"driver": "null-co", "node-name": "q", "size": True},
        {"driver": "null-co", "node-name": "q", "cache": 1},
        {"driver": "null-co", "node-name": "q", "cache": {"direct": 1}},
        {"driver": "null-co", "node-name": "q", "detect-zeroes": "x"},
        {"driver": "null-co", "node-name": "q", "detect-zeroes": "unmap"},
        {"driver": "null-co", "node-name": "q", "force-share": True},
        {"driver": "null-co", "node-name": "q", "a": 1, "b": 2, "c": 3, "zzz": 4},
        {"driver": "null-co", "node-name": "q", "latency-ns": -1},
        {"driver": "file", "node-name": "q", "filename": "{dir}/nonexist.img"},
        {"driver": "file", "node-name": "q", "filename": "{dir}/base.qcow2", "aio": "bad"},
    ]
    steps = [add(opts) for opts in bad]
    steps += [
        Step("blockdev-del", {}),
        Step("blockdev-del", {"node-name": "nonexist"}),
        Step("blockdev-del", {"node-name": "q", "x": 1}),
        Step("query-named-block-nodes", {"flat": 1}),
        Step("query-named-block-nodes", {"x": 1}),
        Step("query-version", {"x": 1}),
        Step("x-debug-query-block-graph", {"x": 1}),
        Step("nonexist-command", {}),
        Step("query-block", {}, compare_return=True),
    ]
    run_scenario(tmp_path, images, steps)


def test_delete_order(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        add({"driver": "file", "node-name": "f", "filename": "{dir}/base.qcow2"}),
        add({"driver": "qcow2", "node-name": "base", "file": "f", "read-only": False}),
        add({"driver": "qcow2", "node-name": "mid", "backing": "base",
             "file": {"driver": "file", "node-name": "mid-file",
                      "filename": "{dir}/mid.qcow2"}}),
        Step("blockdev-del", {"node-name": "f"}),            # file of base
        Step("blockdev-del", {"node-name": "base"}),         # backing of mid
        Step("blockdev-del", {"node-name": "mid-file"}),     # not owned by the monitor
        Step("blockdev-del", {"node-name": "mid"}),
        Step("blockdev-del", {"node-name": "mid"}),
        Step("blockdev-del", {"node-name": "base"}),
        Step("blockdev-del", {"node-name": "f"}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
    ])


def null_protocol_backings(d: Path) -> None:
    """Headers naming the null protocols as their backing file (raw over null-co)."""
    create(d / "on-null-co.qcow2", "1440K", backing="null-co://", backing_fmt="raw")
    create(d / "on-null-aio.qcow2", "1440K", backing="null-aio://", backing_fmt="raw")


def test_header_backing_on_a_null_protocol(tmp_path: Path) -> None:
    run_scenario(tmp_path, null_protocol_backings, [
        add({"driver": "qcow2", "node-name": "a", "file": file_opts("on-null-co.qcow2")}),
        add({"driver": "qcow2", "node-name": "b", "file": file_opts("on-null-aio.qcow2")}),
        Step("query-named-block-nodes", {"flat": False}, compare_graph=False),
    ])

"""blockdev-reopen on qemu-storage-daemon 7.2 and on the engine, step by step (spec §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.qemu import create

pytestmark = pytest.mark.qemu


def chain3(d: Path) -> None:
    """hd0 <- hd1 <- hd2 (relative backing names, like qemu-img create -b)."""
    create(d / "hd0.qcow2", "1M")
    create(d / "hd1.qcow2", "1M", backing="hd0.qcow2")
    create(d / "hd2.qcow2", "1M", backing="hd1.qcow2")


def qcow2(name: str, image: str | None = None, **extra: object) -> dict:
    opts: dict = {"driver": "qcow2", "node-name": name,
                  "file": {"driver": "file", "node-name": f"{name}-file",
                           "filename": f"{{dir}}/{image or name}.qcow2"}}
    opts.update(extra)
    return opts


def reopen(*options: dict) -> Step:
    return Step("blockdev-reopen", {"options": list(options)})


def add(opts: dict) -> Step:
    return Step("blockdev-add", opts)


def test_backing_replace_detach_and_cycles(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd0", backing=None)),
        add(qcow2("hd1", backing=None)),
        add(qcow2("hd2", backing=None)),
        reopen(qcow2("hd2", backing="hd1")),
        reopen(qcow2("hd1", backing="hd0")),
        reopen(qcow2("hd2")),                                   # backing is missing
        reopen(qcow2("hd1")),                                   # missing (header + child)
        reopen(qcow2("hd0", backing="hd2")),                    # cycle through hd1
        reopen(qcow2("hd2", backing="hd2")),                    # own backing
        reopen(qcow2("hd2", backing="nonexist")),
        reopen(qcow2("hd2", backing="")),
        reopen(qcow2("hd2", backing="hd0")),                    # skip hd1
        reopen(qcow2("hd1", backing=None)),
        reopen(qcow2("hd0", backing=None)),                     # no header: fine either way
        reopen(qcow2("hd0")),
        reopen(qcow2("hd2", backing=None)),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
    ])


def test_transaction_atomic_and_ordered(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd0", backing=None)),
        add(qcow2("hd1", backing=None)),
        add(qcow2("hd2", backing=None)),
        # the second entry fails: the first must not happen either
        reopen(qcow2("hd2", backing="hd1"), qcow2("hd1", backing="nonexist")),
        # the second entry sees the first one's change: a cycle only after it
        reopen(qcow2("hd2", backing="hd1"), qcow2("hd1", backing="hd2")),
        reopen(qcow2("hd1", backing="hd0"), qcow2("hd2", backing="hd1")),
        # the same node twice is accepted
        reopen(qcow2("hd2", backing=None), qcow2("hd2", backing="hd0")),
        reopen(qcow2("hd0", backing=None), {"driver": "qcow2", "file": "hd0-file"}),
        reopen(qcow2("hd0", backing=None), qcow2("nonexist")),
    ])


def test_read_only_propagation(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd0", backing=None)),
        reopen(qcow2("hd0", backing=None, **{"read-only": True})),
        # inline child given as an object follows both ways
        reopen(qcow2("hd0", backing=None)),
        reopen(qcow2("hd0", backing=None, **{"read-only": True})),
        # given by reference: stays read-only, so the parent cannot become rw
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "hd0-file", "backing": None}),
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "hd0-file", "backing": None,
                "read-only": True}),
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "hd0-file", "backing": None}),
        # ... unless the parent states read-only: false explicitly
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "hd0-file", "backing": None,
                "read-only": False}),
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "hd0-file", "backing": None,
                "read-only": True}),
        reopen(qcow2("hd0", backing=None)),
        # explicit read-only in the child dict wins
        reopen({"driver": "qcow2", "node-name": "hd0", "backing": None,
                "file": {"driver": "file", "node-name": "hd0-file",
                         "filename": "{dir}/hd0.qcow2", "read-only": True}}),
        reopen(qcow2("hd0", backing=None)),
        # a writer above: the file node cannot become read-only
        reopen({"driver": "file", "node-name": "hd0-file", "filename": "{dir}/hd0.qcow2",
                "read-only": True}),
        # separately added file node: never follows
        add({"driver": "file", "node-name": "f1", "filename": "{dir}/hd1.qcow2"}),
        add({"driver": "qcow2", "node-name": "hd1", "file": "f1", "backing": None}),
        reopen({"driver": "qcow2", "node-name": "hd1", "file": "f1", "backing": None,
                "read-only": True}),
        reopen({"driver": "qcow2", "node-name": "hd1", "file": "f1", "backing": None}),
    ])


def test_default_backing_chain_and_auto_names(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd2")),                                       # opens hd1, hd0 from headers
        reopen(qcow2("hd2", backing=None)),
        add(qcow2("hd1", backing=None)),                          # hd1.qcow2 now unused? no
        reopen(qcow2("hd2", backing="hd1")),
        Step("query-named-block-nodes", {}, compare_graph=True),
    ])


def test_nested_options_and_immutable(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd2")),
        # a nested backing dict must itself carry backing (the auto-named node has one)
        reopen(qcow2("hd2", backing={"driver": "qcow2", "file": {
            "driver": "file", "filename": "{dir}/hd1.qcow2"}})),
        reopen(qcow2("hd2", backing={"driver": "qcow2", "backing": None, "file": {
            "driver": "file", "filename": "{dir}/hd1.qcow2"}})),
        reopen(qcow2("hd2", backing={"driver": "qcow2", "node-name": "x", "backing": None,
                                     "file": {"driver": "file",
                                              "filename": "{dir}/hd1.qcow2"}})),
        reopen(qcow2("hd2", backing=None)),
        reopen({"driver": "raw", "node-name": "hd2", "file": "hd2-file"}),
        reopen({"driver": "qcow2", "node-name": "hd2", "backing": None,
                "file": {"driver": "file", "node-name": "hd2-file",
                         "filename": "{dir}/hd1.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "hd2", "backing": None,
                "file": {"driver": "file", "node-name": "other",
                         "filename": "{dir}/hd2.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "hd2", "backing": None,
                "file": {"driver": "file", "node-name": "hd2-file", "locking": "off",
                         "filename": "{dir}/hd2.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "hd2", "backing": None, "force-share": True,
                "read-only": True, "file": "hd2-file"}),
        reopen(qcow2("hd2", backing=None, **{"detect-zeroes": "unmap"})),
        reopen(qcow2("hd2", backing=None, **{"detect-zeroes": "unmap", "discard": "unmap"})),
        reopen(qcow2("hd2", backing=None, **{"l2-cache-entry-size": 1000})),
        reopen(qcow2("hd2", backing=None, **{"l2-cache-size": 2 << 20,
                                             "cache-size": 1 << 20})),
        reopen(qcow2("hd2", backing=None, **{"cache-size": 1 << 20})),
    ])


def test_null_file_and_raw(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add({"driver": "null-co", "node-name": "n0", "size": 1 << 20}),
        add({"driver": "null-co", "node-name": "n1"}),
        reopen({"driver": "null-co", "node-name": "n0"}),                  # reset size
        reopen({"driver": "null-co", "node-name": "n0", "size": 1 << 21}),
        reopen({"driver": "null-co", "node-name": "n0", "size": 1 << 20, "read-only": True}),
        reopen({"driver": "null-co", "node-name": "n1", "read-zeroes": True}),
        add({"driver": "raw", "node-name": "r0", "file": "n1"}),
        reopen({"driver": "raw", "node-name": "r0", "file": "n0"}),
        reopen({"driver": "raw", "node-name": "r0", "file": "r0"}),
        reopen({"driver": "raw", "node-name": "r0", "file": "n1", "backing": None}),
        reopen({"driver": "raw", "node-name": "r0", "file": None}),
        add(qcow2("hd0", backing=None)),
        reopen(qcow2("hd0", backing=None), {"driver": "raw", "node-name": "r0",
                                            "file": "hd0"}),
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "n1", "backing": None}),
        reopen({"driver": "qcow2", "node-name": "hd0", "file": "hd0-file", "backing": None}),
    ])


def test_file_child_swaps_and_conflicts(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        chain3(d)
        create(d / "a.qcow2", "1M")
        create(d / "b.qcow2", "1M")

    run_scenario(tmp_path, setup, [
        add(qcow2("a", backing=None)),
        add(qcow2("b", backing=None)),
        # taking another rw node's file child conflicts
        reopen({"driver": "qcow2", "node-name": "b", "file": "a-file", "backing": None}),
        # swapping both in one call works
        reopen({"driver": "qcow2", "node-name": "a", "file": "b-file", "backing": None},
               {"driver": "qcow2", "node-name": "b", "file": "a-file", "backing": None}),
        reopen({"driver": "qcow2", "node-name": "a", "file": "a-file", "backing": None},
               {"driver": "qcow2", "node-name": "b", "file": "b-file", "backing": None}),
        reopen({"driver": "qcow2", "node-name": "a", "file": "a", "backing": None}),
        reopen({"driver": "qcow2", "node-name": "a", "file": {"driver": "null-co"},
                "backing": None}),
    ])


def test_unsupported_driver_and_empty_list(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd0", backing=None)),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "file": "hd0-file"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "nonexist",
                                              "file": "hd0-file"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "",
                                              "file": "hd0-file"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "", "node-name": "hd0"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "foo", "node-name": "hd0"}]}),
        Step("blockdev-reopen", {"options": [{"node-name": "hd0"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "hd0"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "hd0",
                                              "file": {"driver": "file"}}]}),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "hd0",
                                              "file": 5}]}),
        Step("blockdev-reopen", {"options": [{"driver": "raw", "node-name": "hd0",
                                              "file": "hd0-file", "backing": None}]}),
        Step("blockdev-reopen", {"options": [{"driver": "qcow2", "node-name": "hd0",
                                              "file": "hd0-file", "read-only": 1}]}),
        Step("blockdev-reopen", {"options": {}}),
        Step("blockdev-reopen", {}),
        Step("blockdev-reopen", {"options": [5]}),
        Step("x-blockdev-reopen", {"driver": "qcow2", "node-name": "hd0", "file": "hd0-file"}),
    ])


def auto_name(peer: object, filename_end: str, driver: str = "qcow2") -> str:
    nodes = peer.execute("query-named-block-nodes", {"flat": True})["return"]  # type: ignore[attr-defined]
    return next(n["node-name"] for n in nodes
                if n["drv"] == driver and n["file"].endswith(filename_end))


def test_auto_named_nodes_and_references(tmp_path: Path) -> None:
    run_scenario(tmp_path, chain3, [
        add(qcow2("hd2")),
        # an auto-named node cannot be named in a reopen
        Step("blockdev-reopen", lambda p: {"options": [{
            "driver": "qcow2", "node-name": auto_name(p, "hd1.qcow2"), "backing": None,
            "file": auto_name(p, "hd1.qcow2", "file")}]}),
        # ... but may be referenced: the current child stays
        Step("blockdev-reopen", lambda p: {"options": [qcow2(
            "hd2", backing=auto_name(p, "hd1.qcow2"))]}),
        add(qcow2("hd0", "hd0", backing=None, **{"read-only": True})),
        # a child attached by reference cannot be reopened through a nested dict
        reopen(qcow2("hd2", backing="hd0")),
        reopen(qcow2("hd2", backing={"driver": "qcow2", "node-name": "hd0", "backing": None,
                                     "file": "hd0-file"})),
        # options given at open that cannot change cannot be reset either
        add({"driver": "file", "node-name": "lk", "locking": "off",
             "filename": "{dir}/hd1.qcow2", "read-only": True}),
        reopen({"driver": "file", "node-name": "lk", "filename": "{dir}/hd1.qcow2",
                "read-only": True}),
        reopen({"driver": "file", "node-name": "lk", "filename": "{dir}/hd1.qcow2",
                "locking": "off"}),
        reopen({"driver": "file", "node-name": "lk", "filename": "{dir}/hd1.qcow2",
                "locking": "on", "read-only": True}),
    ])

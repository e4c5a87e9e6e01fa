"""``null-co`` and ``null-aio`` against qemu-storage-daemon 7.2: ``size``,
``read-zeroes`` and ``latency-ns`` as QEMU takes and refuses them, what the node
reports, what a guest reads and writes, and ``blockdev-reopen`` of its options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.guest import Reads, guest_write

pytestmark = pytest.mark.qemu


def null(driver: str, name: str, expect: str | None = None, **opts: Any) -> Step:
    return Step("blockdev-add", {"driver": driver, "node-name": name, **opts},
                expect=expect)


def reopen(driver: str, name: str, **opts: Any) -> Step:
    return Step("blockdev-reopen", {"options": [{"driver": driver, "node-name": name,
                                                 **opts}]})


@pytest.mark.parametrize("driver", ["null-co", "null-aio"])
def test_null_options_and_refusals(tmp_path: Path, driver: str) -> None:
    run_scenario(tmp_path, None, [
        null(driver, "n0", expect="ok"),
        null(driver, "n1", size=1 << 20, expect="ok"),
        null(driver, "n2", **{"read-zeroes": True, "size": 3 * 512}),
        null(driver, "n3", **{"latency-ns": 1000}),
        null(driver, "n4", **{"latency-ns": -1}),
        null(driver, "n4", size=1000),                     # not a multiple of 512
        null(driver, "n4", size="1M"),
        null(driver, "n4", **{"read-zeroes": "yes"}),
        null(driver, "n4", **{"read-only": True, "size": 4096}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("query-named-block-nodes", {}, compare_return=True),
        reopen(driver, "n1", size=1 << 20),
        reopen(driver, "n1"),                                # size cannot be reset
        reopen(driver, "n1", size=1 << 21),
        reopen(driver, "n2", **{"read-zeroes": False, "size": 3 * 512}),
        reopen(driver, "n3", **{"latency-ns": 5}),
        reopen(driver, "n0", **{"read-only": True}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("blockdev-del", {"node-name": "n3"}, expect="ok"),
    ])


def test_guest_io_on_null_nodes(tmp_path: Path) -> None:
    reads = Reads()
    run_scenario(tmp_path, None, [
        null("null-co", "z", **{"read-zeroes": True, "size": 1 << 20}),
        null("null-aio", "za", **{"read-zeroes": True, "size": 1 << 20,
                                  "latency-ns": 1000}),
        Step("query-version", None, compare_graph=False,
             after=guest_write("z", 4096, 0x42, 8192)),          # goes nowhere
        Step("query-version", None, compare_graph=False, after=reads.hook("z", 0, 65536)),
        Step("query-version", None, compare_graph=False,
             after=reads.hook("za", 1 << 19, 4096)),
        Step("blockdev-add", {"driver": "raw", "node-name": "r", "file": "z",
                              "offset": 4096, "size": 8192}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("query-version", None, compare_graph=False, after=reads.hook("r", 0, 8192)),
    ])
    assert reads.agree() == bytes(8192)
    assert reads.seen[0] == bytes(65536)

"""``preallocate`` filters against qemu-storage-daemon 7.2: options and QEMU's
refusals at open and reopen, the file growing ahead of a qcow2's writes in steps of
``prealloc-size`` rounded to ``prealloc-align`` while the node reports the data end,
zero writes inside the preallocation, and the file cut back to the data end when the
filter goes: afterwards ``qemu-img map``/``check``/``compare`` find the image as it
would be without the filter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.differential import Step, run_scenario, without_host_figures
from tests.support.guest import Reads, guest_write
from tests.support.qemu import check, compare, create, map_json, qemu_io

pytestmark = pytest.mark.qemu

KiB = 1024
MiB = 1 << 20


def images(d: Path) -> None:
    create(d / "a.qcow2", 8 * MiB)
    qemu_io(d / "a.qcow2", "write -P 1 0 64k")
    (d / "r.raw").write_bytes(bytes(MiB))


def prealloc(name: str, file: Any, expect: str | None = None, **extra: Any) -> Step:
    return Step("blockdev-add", {"driver": "preallocate", "node-name": name, "file": file,
                                 **extra}, expect=expect)


def file(image: str, name: str | None = None) -> dict[str, Any]:
    out = {"driver": "file", "filename": "{dir}/" + image}
    if name:
        out["node-name"] = name
    return out


def qcow2_over_filter(**extra: Any) -> Step:
    return Step("blockdev-add", {"driver": "qcow2", "node-name": "q", "file": {
        "driver": "preallocate", "node-name": "p", "file": file("a.qcow2", "f"), **extra}})


class Sizes:
    """Each peer's nodes and their sizes as ``query-named-block-nodes`` lists them
    (not the host's allocation figures: the peers may allocate preallocated zeros
    differently)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def step(self) -> Step:
        def hook(peer: Any) -> None:
            reply = peer.execute("query-named-block-nodes", {"flat": True})
            self.seen.append(without_host_figures([
                {"node-name": re.sub(r"#block\d+", "#block?", n["node-name"]),
                 "drv": n["drv"], "ro": n["ro"],
                 "size": n["image"]["virtual-size"]} for n in reply["return"]]))
        return Step("query-version", None, compare_graph=False, after=hook)

    def agree(self) -> list[Any]:
        pairs = list(zip(self.seen[::2], self.seen[1::2], strict=True))
        for a, b in pairs:
            assert a == b, (a, b)
        return [a for a, _ in pairs]


def sizes_of(listing: Any) -> dict[str, int]:
    return {n["node-name"]: n["size"] for n in listing if not n["node-name"].startswith("#")}


def test_options_and_reopen(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        prealloc("p", file("r.raw"), "error", **{"prealloc-align": 1000}),
        prealloc("p", file("r.raw"), "error", **{"prealloc-align": -512}),
        prealloc("p", file("r.raw"), "error", **{"prealloc-size": -1}),
        prealloc("p", file("r.raw"), "error", **{"prealloc-bogus": 1}),
        prealloc("p", "nope", "error"),
        prealloc("p", file("r.raw", "rf"), "ok", **{"prealloc-align": 0,
                                                    "prealloc-size": 4096}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("blockdev-reopen", {"options": [{"driver": "preallocate", "node-name": "p",
                                              "file": "rf", "prealloc-align": 100}]},
             expect="error"),
        Step("blockdev-reopen", {"options": [{"driver": "preallocate", "node-name": "p",
                                              "file": "rf", "prealloc-size": 65536}]},
             expect="error"),                                  # align cannot be reset
        Step("blockdev-reopen", {"options": [{"driver": "preallocate", "node-name": "p",
                                              "file": "rf", "prealloc-size": 65536,
                                              "prealloc-align": 4096}]}, expect="ok"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("blockdev-del", {"node-name": "p"}, expect="ok"),
    ])


def test_file_grows_ahead_and_is_cut_back(tmp_path: Path) -> None:
    sizes, reads = Sizes(), Reads()
    run_scenario(tmp_path, images, [
        qcow2_over_filter(**{"prealloc-size": 3 * MiB, "prealloc-align": 2 * MiB}),
        sizes.step(),
        Step("query-version", None, compare_graph=False,
             after=guest_write("q", MiB, 0x21, 64 * KiB)),       # a new cluster: grows
        sizes.step(),
        Step("query-version", None, compare_graph=False,
             after=guest_write("q", 2 * MiB, 0x22, 256 * KiB)),  # inside the growth
        Step("query-version", None, compare_graph=False,
             after=guest_write("q", 4 * MiB, 0x23, 64 * KiB)),
        sizes.step(),
        Step("blockdev-reopen", {"options": [{
            "driver": "preallocate", "node-name": "p", "file": "f",
            "prealloc-size": 16 * MiB, "prealloc-align": MiB}]}, expect="ok"),
        Step("query-version", None, compare_graph=False,
             after=guest_write("q", 6 * MiB, 0x24, 2 * MiB)),    # runs past the growth
        sizes.step(),
        Step("query-version", None, compare_graph=False, after=reads.hook("q", 0, 8 * MiB)),
        Step("blockdev-del", {"node-name": "q"}, expect="ok"),   # the filter goes too
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q2",
                              "file": file("a.qcow2")}),
        sizes.step(),
        Step("blockdev-del", {"node-name": "q2"}),
    ])
    listings = sizes.agree()
    before, grown = sizes_of(listings[0]), sizes_of(listings[1])
    assert grown["f"] > grown["p"] > before["p"], (before, grown)
    assert sizes_of(listings[4])["q2"] == 8 * MiB
    data = reads.agree()
    assert data[MiB:MiB + 64 * KiB] == bytes([0x21]) * (64 * KiB)
    assert data[6 * MiB:] == bytes([0x24]) * (2 * MiB)
    qsd, eng = tmp_path / "qsd" / "a.qcow2", tmp_path / "engine" / "a.qcow2"
    assert qsd.stat().st_size == eng.stat().st_size     # both cut back to the data end
    assert map_json(qsd) == map_json(eng)
    assert compare(qsd, eng)
    check(eng)

"""``blockgraph plan`` heads a plan with its consequences, the lines the editor's review
shows: an NBD export of ``top`` on qemu-storage-daemon 7.2, its chain opened from the
image headers (auto-named), re-pointed past ``mid`` onto ``low``. The warning names the
export and the amount it reads differently; the lines name the layer that leaves the
chain, the bytes no longer read and what is read instead — all counted here with
``qemu-img map`` of the chain before and after — and the nodes QEMU frees, which are
then gone from QEMU's graph once the plan is applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.planner.consequences import size_text
from tests.commands.test_plan import chain, names, open_from_headers, plan
from tests.support.layer_maps import chain_name, changes, qemu_map, sources
from tests.support.peer import Peer
from tests.support.qemu import qemu_img, qemu_io

pytestmark = pytest.mark.qemu


def items(line: str, head: str) -> set[str]:
    """The comma-separated items of the printed line that starts with ``head``."""
    return set(line.removeprefix(head).split(", "))


async def test_the_plan_says_what_an_export_reads_afterwards_as_qemu_img_map_counts_it(
        peer: Peer, tmp_path: Path) -> None:
    files = chain(tmp_path)
    qemu_io(files["mid"], "write -P 0x5a 0 64k")     # mid hides some of base's data too
    open_from_headers(peer, files)
    n = names(peer)
    peer.ok("nbd-server-start", {"addr": {"type": "unix", "data": {
        "path": str(tmp_path / "nbd.sock")}}})
    peer.ok("block-export-add", {"type": "nbd", "id": "exp-top", "node-name": "top"})

    top, low, base = (str(files[k]) for k in ("top", "low", "base"))
    total, hidden, revealed = changes(
        sources(qemu_map(top), ["top", n["mid"], n["low"], n["base"]]),
        sources(qemu_map(chain_name(top, low, base)), ["top", n["low"], n["base"]]))
    assert total and hidden == {n["mid"]: 128 << 10} and None in revealed   # not trivial

    r = await plan(peer.address, "rebase", "top", "--onto", n["low"])
    assert r.code == 0 and r.err == "", r
    lines = r.out.splitlines()
    assert (f"# warning: export exp-top is an export: its clients read other data in "
            f"{size_text(total)} as soon as this is sent.") in lines
    start = lines.index("# consequences:")
    assert lines[start + 1] == f"#   export exp-top: reads {size_text(total)} from other layers"
    assert lines[start + 2] == f"#     leaves its chain: {n['mid']}"
    (gone,) = [x for x in lines if x.startswith("#     no longer read: ")]
    assert items(gone, "#     no longer read: ") == {
        f"{size_text(b)} of {layer}" for layer, b in hidden.items()}
    (instead,) = [x for x in lines if x.startswith("#     read instead: ")]
    assert items(instead, "#     read instead: ") == {
        f"{size_text(b)} of {layer or 'zeros'}" for layer, b in revealed.items()}
    (freed,) = [x for x in lines if x.startswith("#   Freed by QEMU")]
    said_freed = items(freed, "#   Freed by QEMU (nothing holds them any more): ")
    assert n["mid"] in said_freed
    assert "#   Image files written: none" in lines
    assert lines.index("# consequences:") < next(
        i for i, x in enumerate(lines) if not x.startswith("#"))   # before the commands

    before = {x["node-name"] for x in peer.ok("query-named-block-nodes", {"flat": True})}
    assert said_freed <= before
    r = await plan(peer.address, "--apply", "rebase", "top", "--onto", n["low"])
    assert r.code == 0, r
    after = {x["node-name"] for x in peer.ok("query-named-block-nodes", {"flat": True})}
    assert before - after == said_freed                  # QEMU freed exactly those


async def test_a_plan_that_changes_no_reader_says_so(peer: Peer, tmp_path: Path) -> None:
    files = chain(tmp_path)
    open_from_headers(peer, files)
    n = names(peer)
    # streaming copies data up without changing what top reads: no warning
    r = await plan(peer.address, "stream", "top", "--base", n["low"])
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert not any(x.startswith("# warning: ") for x in lines)
    assert "#   top (nothing attached): reads the same data" in lines, r.out
    assert f"#     leaves its chain: {n['mid']}" in lines
    # and it does: what top reads afterwards is what it read before, byte for byte
    copy = tmp_path / "before.raw"
    qemu_img("convert", "-U", "-O", "raw", str(files["top"]), str(copy))
    r = await plan(peer.address, "--apply", "stream", "top", "--base", n["low"])
    assert r.code == 0, r
    peer.ok("blockdev-del", {"node-name": "top"})      # closed, so its file is up to date
    qemu_img("compare", "-f", "raw", "-F", "qcow2", str(copy), str(files["top"]))

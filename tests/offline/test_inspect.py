"""Broken links found on disk, the fixes offered, and the offline graph source."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import pytest

from engine.formats import open_chain, open_image
from engine.graph.snapshot import GraphSnapshot
from engine.offline import apply_fix, compare_with_disk, inspect_chain, offline_snapshot
from engine.offline.inspect import FORMAT, LOOP, MISSING, UNFORMATTED
from gui.commands.offline import check as offline_check
from tests.support.peer import started_peer
from tests.support.qemu import check, create, qemu_img

pytestmark = pytest.mark.qemu


def test_healthy_chain_layers_and_allocation(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, _, _ = chain_dirs
    report = inspect_chain(ours / "top.qcow2")
    assert report.ok and report.broken is None
    assert [layer.name for layer in report.layers] == ["top.qcow2", "mid.qcow2", "base.qcow2"]
    top, mid, base = report.layers
    assert top.data_bytes == 128 << 10 and top.zero_bytes == 64 << 10
    assert mid.data_bytes == 64 << 10 and mid.zero_bytes == 64 << 10
    assert base.data_bytes == 1 << 20 and base.zero_bytes == 64 << 10
    # the provider map says which depth serves each range (like qemu-img map)
    served = {(e["start"], e["depth"]) for e in report.provider_map if e["present"]}
    assert {(0, 2), (256 << 10, 1), (512 << 10, 0), (1 << 20, 1), (3 << 20, 0)} <= served


def test_missing_backing_offers_the_file_found_beside_the_overlay(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    create(old / "base.qcow2", "1M")
    create(tmp_path / "top.qcow2", "1M", backing=str(old / "base.qcow2"))
    shutil.move(old / "base.qcow2", tmp_path / "base.qcow2")   # the base moved next to top

    report = inspect_chain(tmp_path / "top.qcow2")
    problem = report.broken
    assert problem is not None and problem.kind == MISSING
    assert str(old / "base.qcow2") in problem.message
    labels = [f.label for f in problem.fixes]
    assert labels[0] == "Point at base.qcow2 (header only)"
    assert labels[-1].startswith("Detach")
    fix = problem.fixes[0]
    assert fix.command == f"qemu-img rebase -u -f qcow2 -b base.qcow2 -F qcow2 {tmp_path}/top.qcow2"

    result = apply_fix(fix)
    assert result.warnings
    assert inspect_chain(tmp_path / "top.qcow2").ok
    check(tmp_path / "top.qcow2")


def test_wrong_backing_format_is_found_and_fixed(tmp_path: Path) -> None:
    create(tmp_path / "base.qcow2", "1M")
    create(tmp_path / "top.qcow2", "1M", backing="base.qcow2")
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", "base.qcow2", "-F", "raw",
             tmp_path / "top.qcow2")
    problem = inspect_chain(tmp_path / "top.qcow2").broken
    assert problem is not None and problem.kind == FORMAT
    assert "says the backing file 'base.qcow2' is raw, but it is a qcow2 image" in problem.message
    apply_fix(problem.fixes[0])
    with open_image(tmp_path / "top.qcow2") as img:
        assert img.backing_format == "qcow2"
    assert inspect_chain(tmp_path / "top.qcow2").ok


def test_missing_backing_format_is_a_warning(tmp_path: Path) -> None:
    create(tmp_path / "base.qcow2", "1M")
    create(tmp_path / "top.qcow2", "1M", backing="base.qcow2")
    with open_image(tmp_path / "top.qcow2", writable=True) as img:
        img.set_backing("base.qcow2", None)
    report = inspect_chain(tmp_path / "top.qcow2")
    assert [p.kind for p in report.problems] == [UNFORMATTED]
    assert report.broken is None and len(report.layers) == 2


def test_loop_is_found_and_the_closing_link_detached(tmp_path: Path) -> None:
    create(tmp_path / "a.qcow2", "1M")
    create(tmp_path / "b.qcow2", "1M", backing="a.qcow2")
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", tmp_path / "a.qcow2")
    report = inspect_chain(tmp_path / "b.qcow2")
    problem = report.broken
    assert problem is not None and problem.kind == LOOP
    assert problem.overlay == str(tmp_path / "a.qcow2")
    apply_fix(problem.fixes[0])
    assert [im.path for im in open_chain(tmp_path / "b.qcow2")] == [
        str(tmp_path / "b.qcow2"), str(tmp_path / "a.qcow2")]


def test_offline_snapshot_draws_chains_and_broken_links(chain_dirs: tuple[Path, Path, Path],
                                                         tmp_path: Path) -> None:
    ours, _, _ = chain_dirs
    create(ours / "other.qcow2", "4M", backing="base.qcow2")
    create(ours / "lost.qcow2", "4M", backing="mid.qcow2")
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", "gone.qcow2", "-F", "qcow2",
             ours / "lost.qcow2")
    graph = offline_snapshot([ours / "top.qcow2", ours / "other.qcow2", ours / "lost.qcow2",
                              tmp_path / "nonexistent.qcow2"])
    snap = graph.snapshot
    k = {n.name: n.key for n in snap.nodes.values()}
    assert snap.backing(k["top.qcow2"]) == k["mid.qcow2"]
    assert snap.backing(k["other.qcow2"]) == k["base.qcow2"]       # shared base, one node
    assert len([n for n in snap.nodes.values() if n.name == "base.qcow2"]) == 1
    missing = snap.backing(k["lost.qcow2"])
    assert missing is not None and snap.nodes[missing].driver == "missing"
    assert graph.broken_edges == {(k["lost.qcow2"], "backing", missing)}
    assert graph.problems[k["lost.qcow2"]][0].kind == MISSING
    assert snap.nodes[k["mid.qcow2"]].info["data_bytes"] == 64 << 10
    assert str(tmp_path / "nonexistent.qcow2") in graph.errors


def test_compare_live_graph_with_disk(chain_dirs: tuple[Path, Path, Path]) -> None:
    from engine.graph.snapshot import GraphSnapshot
    from engine.offline import compare_with_disk
    from engine.qmp import Engine

    ours, _, _ = chain_dirs
    with Engine(rng_seed=1) as eng:
        eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "alt",
                                     "file": {"driver": "file",
                                              "filename": str(ours / "alt.qcow2")}})
        eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                     "file": {"driver": "file",
                                              "filename": str(ours / "top.qcow2")}})

        def snap() -> GraphSnapshot:
            return GraphSnapshot.from_qmp(eng.execute("x-debug-query-block-graph"),
                                          eng.execute("query-named-block-nodes",
                                                      {"flat": True}))

        assert compare_with_disk(snap()) == []
        # re-point top's backing in memory only: the header still names mid.qcow2
        eng.execute("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "top", "backing": "alt",
            "file": {"driver": "file", "filename": str(ours / "top.qcow2")}}]})
        diffs = compare_with_disk(snap())
        assert [(d.node, d.kind) for d in diffs] == [("top", "link")]
        assert diffs[0].live == str(ours / "alt.qcow2")
        assert diffs[0].disk == str(ours / "mid.qcow2")
        assert "lost when the image is reopened" in diffs[0].message
        # and a header rewritten behind the peer's back
        with open_image(ours / "alt.qcow2", writable=True) as img:
            img.set_backing("base.qcow2", "qcow2")
        kinds = {(d.node, d.kind) for d in compare_with_disk(snap())}
        assert ("alt", "header") in kinds and ("alt", "link") in kinds


def test_offline_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gui.cli import main

    create(tmp_path / "base.qcow2", "1M")
    create(tmp_path / "top.qcow2", "1M", backing="base.qcow2")
    assert main(["offline", "--check", str(tmp_path / "top.qcow2")]) == 0
    out = capsys.readouterr().out
    assert "[0] top.qcow2 (qcow2, 1048576 bytes)" in out and "-> base.qcow2" in out
    (tmp_path / "base.qcow2").unlink()
    assert main(["offline", "--check", str(tmp_path / "top.qcow2")]) == 1
    out = capsys.readouterr().out
    assert "BROKEN: top.qcow2: backing file 'base.qcow2' is missing" in out
    assert "fix: Detach the backing file (header only): qemu-img rebase -u -f qcow2 -b ''" in out


def test_a_nul_in_the_backing_name_ends_it_as_in_qemu(tmp_path: Path) -> None:
    """QEMU reads the header's name as a C string: ``ba\\0k`` looks for ``ba``."""
    create(tmp_path / "ba", "1M")
    qemu_img("create", "-q", "-u", "-f", "qcow2", "-b", "bak", "-F", "qcow2",
             str(tmp_path / "top.qcow2"), "1M")
    with open(tmp_path / "top.qcow2", "r+b") as f:
        (offset,) = struct.unpack(">Q", f.read(16)[8:16])
        f.seek(offset)
        f.write(b"ba\0")
    report = inspect_chain(str(tmp_path / "top.qcow2"))
    assert [layer.path for layer in report.layers] == [str(tmp_path / "top.qcow2"),
                                                       str(tmp_path / "ba")]
    (tmp_path / "ba").unlink()
    out = io.StringIO()
    assert offline_check([str(tmp_path / "top.qcow2")], out) == 1
    assert f"looked for {tmp_path}/ba)" in out.getvalue()


def test_compare_looks_through_a_blkdebug_backing_in_qemu(
        chain_dirs: tuple[Path, Path, Path]) -> None:
    """A backing reached through a filter whose child is not ``file`` (blkdebug's
    ``image``) is the image below it: the same as the header's, or a difference."""
    ours, _, _ = chain_dirs
    with started_peer("qsd", ours.parent) as qsd:
        def image(name: str) -> dict:
            return {"driver": "file", "filename": str(ours / name)}

        qsd.ok("blockdev-add", {"driver": "qcow2", "node-name": "mid", "file": image(
            "mid.qcow2"), "backing": {"driver": "qcow2", "file": image("base.qcow2")}})
        qsd.ok("blockdev-add", {"driver": "blkdebug", "node-name": "dbg", "image": "mid"})
        qsd.ok("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                "file": image("top.qcow2"), "backing": "dbg"})
        snap = GraphSnapshot.from_qmp(qsd.ok("x-debug-query-block-graph"),
                                      qsd.ok("query-named-block-nodes", {"flat": True}))
        assert snap.nodes[snap.backing("top") or ""].driver == "blkdebug"
        assert compare_with_disk(snap) == []
        # the same filter over another image: the in-memory link is not the header's
        qsd.ok("blockdev-add", {"driver": "qcow2", "node-name": "alt", "file": image(
            "alt.qcow2")})
        qsd.ok("blockdev-add", {"driver": "blkdebug", "node-name": "dbg2", "image": "alt"})
        qsd.ok("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "top", "file": image("top.qcow2"),
            "backing": "dbg2"}]})
        snap = GraphSnapshot.from_qmp(qsd.ok("x-debug-query-block-graph"),
                                      qsd.ok("query-named-block-nodes", {"flat": True}))
        diffs = compare_with_disk(snap)
        assert [(d.node, d.kind, d.live, d.disk) for d in diffs] == [
            ("top", "link", str(ours / "alt.qcow2"), str(ours / "mid.qcow2"))]

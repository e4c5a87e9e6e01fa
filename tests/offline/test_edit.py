"""Offline edits against qemu-img doing the same on a copy of the same chain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.formats import open_image
from engine.offline import (
    OfflineEditError,
    commit,
    flatten,
    rebase,
    stream_into_top,
)
from tests.support.qemu import check, compare, info, map_json, qemu_img

pytestmark = pytest.mark.qemu


def _progress() -> tuple[list[tuple[int, int]], object]:
    seen: list[tuple[int, int]] = []
    return seen, lambda done, total: seen.append((done, total))


def test_safe_rebase_matches_qemu_img(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    seen, progress = _progress()
    result = rebase(ours / "top.qcow2", "alt.qcow2", safe=True, progress=progress)
    qemu_img("rebase", "-f", "qcow2", "-b", "alt.qcow2", "-F", "qcow2", ref / "top.qcow2")

    assert result.command == (f"qemu-img rebase -f qcow2 -b alt.qcow2 -F qcow2 "
                              f"{ours / 'top.qcow2'}")
    assert result.copied_bytes > 0 and not result.warnings
    check(ours / "top.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    assert compare(ours / "top.qcow2", orig / "top.qcow2")   # guest content kept
    meta = info(ours / "top.qcow2")
    assert meta["backing-filename"] == "alt.qcow2"
    assert meta["backing-filename-format"] == "qcow2"
    assert seen and seen[-1][0] == seen[-1][1] == 4 << 20


def test_safe_rebase_onto_the_base_skipping_mid(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    rebase(ours / "top.qcow2", "base.qcow2", "qcow2")
    qemu_img("rebase", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", ref / "top.qcow2")
    check(ours / "top.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    assert compare(ours / "top.qcow2", orig / "top.qcow2")
    # only what mid defined had to be copied: mid's data cluster and its zero cluster
    depths = {(e["start"], e["depth"]) for e in map_json(ours / "top.qcow2") if e["present"]}
    assert (1 << 20, 0) in depths and (256 << 10, 0) in depths


def test_stream_into_top_matches_rebase_to_nothing(
        chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    result = stream_into_top(ours / "top.qcow2")
    qemu_img("rebase", "-f", "qcow2", "-b", "", ref / "top.qcow2")
    assert result.command == f"qemu-img rebase -f qcow2 -b '' {ours / 'top.qcow2'}"
    check(ours / "top.qcow2")
    assert "backing-filename" not in info(ours / "top.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    assert compare(ours / "top.qcow2", orig / "top.qcow2")


def test_unsafe_rebase_rewrites_the_header_only(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    result = rebase(ours / "top.qcow2", "alt.qcow2", "qcow2", safe=False)
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", "alt.qcow2", "-F", "qcow2",
             ref / "top.qcow2")
    assert result.command.startswith("qemu-img rebase -u ")
    assert result.warnings and "only the header" in result.warnings[0]
    check(ours / "top.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    assert not compare(ours / "top.qcow2", orig / "top.qcow2")   # content did change
    assert map_json(ours / "top.qcow2")[0]["depth"] == 1          # nothing was copied


def test_flatten_equals_qemu_img_convert(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    seen, progress = _progress()
    result = flatten(ours / "top.qcow2", ours / "flat.qcow2", progress=progress)
    qemu_img("convert", "-f", "qcow2", "-O", "qcow2", ref / "top.qcow2", ref / "flat.qcow2")
    assert result.command == (f"qemu-img convert -f qcow2 -O qcow2 {ours / 'top.qcow2'} "
                              f"{ours / 'flat.qcow2'}")
    check(ours / "flat.qcow2")
    assert "backing-filename" not in info(ours / "flat.qcow2")
    assert compare(ours / "flat.qcow2", ref / "flat.qcow2")
    assert compare(ours / "flat.qcow2", orig / "top.qcow2")
    assert seen[-1] == (4 << 20, 4 << 20)
    # the source chain is untouched
    assert compare(ours / "top.qcow2", orig / "top.qcow2")


def test_flatten_to_raw(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, _ref, orig = chain_dirs
    flatten(ours / "top.qcow2", ours / "flat.raw", output_format="raw")
    assert compare(ours / "flat.raw", orig / "top.qcow2", "raw", "qcow2")


def test_flatten_refuses_to_overwrite(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, _, _ = chain_dirs
    before = (ours / "base.qcow2").read_bytes()
    with pytest.raises(OfflineEditError, match="already exists"):
        flatten(ours / "top.qcow2", ours / "base.qcow2")
    assert (ours / "base.qcow2").read_bytes() == before


def test_commit_equals_qemu_img_commit(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    result = commit(ours / "top.qcow2")
    qemu_img("commit", "-f", "qcow2", ref / "top.qcow2")
    assert result.command == f"qemu-img commit -f qcow2 {ours / 'top.qcow2'}"
    for d in (ours, ref):
        check(d / "top.qcow2")
        check(d / "mid.qcow2")
    assert compare(ours / "mid.qcow2", ref / "mid.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    assert compare(ours / "top.qcow2", orig / "top.qcow2")        # guest view kept
    # the top was emptied, as qemu-img does, and still points at mid
    assert not [e for e in map_json(ours / "top.qcow2") if e["depth"] == 0 and e["present"]]
    assert info(ours / "top.qcow2")["backing-filename"] == "mid.qcow2"
    assert compare(ours / "base.qcow2", orig / "base.qcow2")      # base untouched


def test_commit_keep_top(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    result = commit(ours / "top.qcow2", drop=False)
    qemu_img("commit", "-d", "-f", "qcow2", ref / "top.qcow2")
    assert result.command.endswith(f"-d {ours / 'top.qcow2'}")
    assert compare(ours / "mid.qcow2", ref / "mid.qcow2")
    assert (ours / "top.qcow2").read_bytes() == (orig / "top.qcow2").read_bytes()


def test_commit_through_layers_into_base(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, ref, orig = chain_dirs
    result = commit(ours / "top.qcow2", ours / "base.qcow2")
    qemu_img("commit", "-f", "qcow2", "-b", ref / "base.qcow2", ref / "top.qcow2")
    assert "-b" in result.command
    check(ours / "base.qcow2")
    assert compare(ours / "base.qcow2", ref / "base.qcow2")
    assert compare(ours / "base.qcow2", orig / "top.qcow2")
    # qemu-img leaves the upper images alone with -b
    for name in ("top.qcow2", "mid.qcow2"):
        assert (ours / name).read_bytes() == (orig / name).read_bytes()


def test_safe_rebase_with_missing_backing_changes_nothing(
        chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, _, _ = chain_dirs
    os.unlink(ours / "mid.qcow2")
    before = (ours / "top.qcow2").read_bytes()
    with pytest.raises(OfflineEditError, match="use unsafe mode"):
        rebase(ours / "top.qcow2", "alt.qcow2")
    assert (ours / "top.qcow2").read_bytes() == before


def test_rebase_refuses_a_loop(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, _, _ = chain_dirs
    before = (ours / "base.qcow2").read_bytes()
    with pytest.raises(OfflineEditError, match="loop"):
        rebase(ours / "base.qcow2", "top.qcow2")
    assert (ours / "base.qcow2").read_bytes() == before


def test_commit_without_backing_is_refused(chain_dirs: tuple[Path, Path, Path]) -> None:
    ours, _, _ = chain_dirs
    with pytest.raises(OfflineEditError, match="no backing file"):
        commit(ours / "base.qcow2")
    with open_image(ours / "base.qcow2") as img:
        assert img.backing_file is None


def test_safe_rebase_of_a_standalone_image_onto_a_shorter_backing(tmp_path: Path) -> None:
    """No old backing at all, and a new backing smaller than the image: like qemu-img."""
    from tests.support.qemu import create, qemu_io

    for d in ("ours", "ref"):
        (tmp_path / d).mkdir()
        create(tmp_path / d / "img.qcow2", "4M")
        qemu_io(tmp_path / d / "img.qcow2", "write -P 0x11 1M 64k")
        create(tmp_path / d / "small.qcow2", "2M")
        qemu_io(tmp_path / d / "small.qcow2", "write -P 0x22 0 2M")
    rebase(tmp_path / "ours" / "img.qcow2", "small.qcow2")
    qemu_img("rebase", "-f", "qcow2", "-b", "small.qcow2", "-F", "qcow2",
             tmp_path / "ref" / "img.qcow2")
    check(tmp_path / "ours" / "img.qcow2")
    assert compare(tmp_path / "ours" / "img.qcow2", tmp_path / "ref" / "img.qcow2")
    with open_image(tmp_path / "ours" / "img.qcow2") as img:
        assert img.read(0, 64) == bytes(64)                # still zeros, not 0x22
        assert img.read(1 << 20, 4) == b"\x11" * 4

"""``blockgraph info`` against ``qemu-img info`` on the same files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from engine.formats import cli
from tests.support.qemu import create, qemu_img

pytestmark = pytest.mark.qemu

MiB = 1 << 20


def ours(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shared_equal(mine: Any, theirs: Any) -> None:
    """Every key qemu-img reports (its 7.2 set) must be there with the same value."""
    if isinstance(theirs, list):
        assert isinstance(mine, list) and len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            shared_equal(a, b)
        return
    if not isinstance(theirs, dict):
        assert mine == theirs
        return
    assert isinstance(mine, dict), mine
    for key, value in theirs.items():
        assert key in mine, f"missing {key!r}"
        if isinstance(value, dict | list):
            shared_equal(mine[key], value)
        else:
            assert mine[key] == value, (key, mine[key], value)
    assert set(mine) == set(theirs), set(mine) ^ set(theirs)


def build_chain(root: Path, depth: int) -> str:
    """A chain whose images live in nested directories, linked by relative names.

    Image i lives in the ``i % 3``-th of ``d0/d1``, ``d0``, ``d2``, so the names go
    down into a sub-directory (``d1/img0.qcow2``), up (``../../d2/img2.qcow2``) and
    across; the top is returned as a path relative to ``root`` (the test's CWD),
    like a user would type it.
    """
    dirs = [root / "d0" / "d1", root / "d0", root / "d2"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    paths = [dirs[i % 3] / f"img{i}.qcow2" for i in range(depth)]
    create(paths[0], 4 * MiB, fmt="qcow2")
    for i in range(1, depth):
        rel = os.path.relpath(paths[i - 1], paths[i].parent)
        create(paths[i], 4 * MiB + i * 65536 * (i % 2), backing=rel, backing_fmt="qcow2",
               options="cluster_size=4096" if i % 4 == 0 else None)
    return os.path.relpath(paths[-1], root)


@pytest.mark.parametrize("depth", [1, 3, 50])
def test_backing_chain_json_matches_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], depth: int) -> None:
    monkeypatch.chdir(tmp_path)
    top = build_chain(tmp_path, depth)
    theirs = json.loads(qemu_img("info", "--backing-chain", "--output=json", top).stdout)
    code, out, err = ours(capsys, "--backing-chain", "--output", "json", top)
    assert code == 0, err
    mine = json.loads(out)
    assert len(mine) == depth
    names = {i.get("backing-filename", "") for i in mine}
    if depth >= 3:
        assert "d1/img0.qcow2" in names and any(n.startswith("../") for n in names)
    shared_equal(mine, theirs)
    # and one image alone
    theirs1 = json.loads(qemu_img("info", "--output=json", top).stdout)
    code, out, _ = ours(capsys, "--output=json", top)
    shared_equal(json.loads(out), theirs1)


def test_absolute_backing_and_raw_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    base = create(tmp_path / "base.raw", 2 * MiB, fmt="raw")
    top = create(tmp_path / "top.qcow2", 2 * MiB, backing=str(base), backing_fmt="raw")
    theirs = json.loads(qemu_img("info", "--backing-chain", "--output=json", str(top)).stdout)
    code, out, _ = ours(capsys, "--backing-chain", "--output=json", str(top))
    assert code == 0
    shared_equal(json.loads(out), theirs)


def test_v2_and_snapshots_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    v2 = create(tmp_path / "v2.qcow2", 3 * MiB, options="compat=0.10,cluster_size=512")
    snap = create(tmp_path / "snap.qcow2", 3 * MiB, options="refcount_bits=1,lazy_refcounts=on")
    qemu_img("snapshot", "-c", "first", str(snap))
    for img in (v2, snap):
        theirs = json.loads(qemu_img("info", "--output=json", str(img)).stdout)
        code, out, _ = ours(capsys, "--output=json", "-f", "qcow2", str(img))
        assert code == 0
        shared_equal(json.loads(out), theirs)


def test_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = create(tmp_path / "base.qcow2", 64 * MiB)
    top = create(tmp_path / "top.qcow2", 64 * MiB, backing="base.qcow2")
    code, out, _ = ours(capsys, "--backing-chain", str(top))
    assert code == 0
    theirs = qemu_img("info", "--backing-chain", str(top)).stdout
    # the lines that do not depend on disk usage are the same as qemu-img's
    mine_lines = [ln for ln in out.splitlines() if not ln.startswith("disk size")]
    their_lines = [ln for ln in theirs.splitlines() if not ln.startswith("disk size")]
    assert mine_lines == their_lines
    assert f"image: {base}" in out


def test_missing_backing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = create(tmp_path / "gone.qcow2", MiB)
    top = create(tmp_path / "top.qcow2", MiB, backing="gone.qcow2")
    base.unlink()
    assert qemu_img("info", "--backing-chain", str(top), check=False).returncode != 0
    code, out, err = ours(capsys, "--backing-chain", str(top))
    assert code != 0 and out == ""
    assert "gone.qcow2" in err and "No such file or directory" in err
    assert "Traceback" not in err
    # without --backing-chain the header is still described
    code, out, _ = ours(capsys, "--output=json", str(top))
    assert code == 0 and json.loads(out)["backing-filename"] == "gone.qcow2"


def test_backing_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = create(tmp_path / "a.qcow2", MiB)
    b = create(tmp_path / "b.qcow2", MiB, backing="a.qcow2")
    qemu_img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", str(a))
    assert qemu_img("info", "--backing-chain", str(b), check=False).returncode != 0
    code, out, err = ours(capsys, "--backing-chain", str(b))
    assert code != 0 and out == ""
    assert "loop" in err and "b.qcow2" in err


def test_missing_image_and_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ours(capsys, str(tmp_path / "nope.qcow2"))
    assert code == 1 and "nope.qcow2" in err and "No such file or directory" in err
    code, _, err = ours(capsys, "--output", "xml", "x")
    assert code == 2 and "invalid choice" in err
    code, _, err = ours(capsys, str(tmp_path))
    assert code == 1 and "Is a directory" in err


def test_dispatch_through_blockgraph_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    from gui import cli as top_cli

    img = create(tmp_path / "x.qcow2", MiB)
    assert top_cli.main(["info", "--output=json", str(img)]) == 0
    assert json.loads(capsys.readouterr().out)["virtual-size"] == MiB


def test_persistent_bitmaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = create(tmp_path / "bm.qcow2", 4 * MiB)
    qemu_img("bitmap", "--add", str(img), "bm0")
    qemu_img("bitmap", "--add", "-g", "131072", "--disable", str(img), "other")
    theirs = json.loads(qemu_img("info", "--output=json", str(img)).stdout)
    assert len(theirs["format-specific"]["data"]["bitmaps"]) == 2
    code, out, _ = ours(capsys, "--output=json", str(img))
    assert code == 0
    shared_equal(json.loads(out), theirs)
    code, out, _ = ours(capsys, str(img))
    their_lines = qemu_img("info", str(img)).stdout.splitlines()
    assert [ln for ln in out.splitlines() if not ln.startswith("disk size")] == [
        ln for ln in their_lines if not ln.startswith("disk size")]

"""Images whose header names a ``json:{...}`` backing file (QEMU writes such names where a
node's filename cannot be a plain one): ``blockgraph info --backing-chain`` against
``qemu-img info`` on the same files, and the offline view's chain walk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.formats.chain import backing_host_path
from engine.offline import inspect_chain
from tests.formats.test_info_cli import ours, shared_equal
from tests.support.qemu import create, qemu_img, qemu_io

pytestmark = pytest.mark.qemu

MiB = 1 << 20


def with_json_backing(d: Path, backing: dict[str, object], fmt: str) -> Path:
    top = d / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "json:" + json.dumps(backing), "-F", fmt,
             str(top), str(MiB))
    return top


def test_a_qcow2_named_by_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    base = create(tmp_path / "base.qcow2", MiB)
    qemu_io(base, "write -P 9 0 64k")
    top = with_json_backing(tmp_path, {"driver": "qcow2", "file": {
        "driver": "file", "filename": str(base)}}, "qcow2")
    theirs = json.loads(qemu_img("info", "--backing-chain", "--output=json", str(top)).stdout)
    code, out, err = ours(capsys, "--backing-chain", "--output=json", str(top))
    assert code == 0, err
    shared_equal(json.loads(out), theirs)
    assert backing_host_path(str(top), theirs[0]["backing-filename"]) == str(base)


def test_a_raw_window_named_by_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    disk = create(tmp_path / "disk.raw", 3 * MiB, fmt="raw")
    top = with_json_backing(tmp_path, {"driver": "raw", "offset": MiB, "size": MiB, "file": {
        "driver": "file", "filename": str(disk)}}, "raw")
    theirs = json.loads(qemu_img("info", "--backing-chain", "--output=json", str(top)).stdout)
    code, out, err = ours(capsys, "--backing-chain", "--output=json", str(top))
    assert code == 0, err
    mine = json.loads(out)
    shared_equal(mine, theirs)
    assert mine[1]["virtual-size"] == MiB


def test_a_file_protocol_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = create(tmp_path / "base.qcow2", MiB)
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", f"file:{base}", "-F", "qcow2", str(top),
             str(MiB))
    theirs = json.loads(qemu_img("info", "--backing-chain", "--output=json", str(top)).stdout)
    code, out, err = ours(capsys, "--backing-chain", "--output=json", str(top))
    assert code == 0, err
    shared_equal(json.loads(out), theirs)


def test_the_offline_view_follows_a_json_backing(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", MiB)
    top = with_json_backing(tmp_path, {"driver": "qcow2", "file": {
        "driver": "file", "filename": str(base)}}, "qcow2")
    report = inspect_chain(top)
    assert [layer.path for layer in report.layers] == [str(top), str(base)]
    assert report.broken is None

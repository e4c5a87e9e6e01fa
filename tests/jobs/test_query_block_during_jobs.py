"""``query-block`` of a drive while a job's filter sits in its chain, against
qemu-system-x86_64 7.2.

A drive's medium is shown as the user built it: the filters a job inserts on its
own (auto-named, implicit) are neither listed in the image chain nor counted in
``backing_file_depth``; ``query-named-block-nodes`` shows them. A filter named with
``filter-node-name`` is the user's and is shown and counted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.cmdline_peers import engine_peer, qemu_system_peer
from tests.support.differential import Step, run_scenario
from tests.support.qemu import create, qemu_io

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="qemu-system-x86 is installed by scripts/bootstrap.sh")]


def chain(d: Path) -> None:
    create(d / "base.qcow2", "2M")
    create(d / "mid.qcow2", "2M", backing=str(d / "base.qcow2"))
    qemu_io(d / "mid.qcow2", "write -P 0xef 0 1M")
    create(d / "top.qcow2", "2M", backing=str(d / "mid.qcow2"))


def drive(d: Path) -> list[str]:
    return ["-drive", f"if=none,id=drive0,file={d}/top.qcow2,format=qcow2,node-name=top,"
                      "backing.node-name=mid,backing.backing.node-name=base",
            "-device", "virtio-scsi", "-device", "scsi-hd,id=scsi0,drive=drive0"]


def medium(reply: dict[str, Any], directory: Path) -> dict[str, Any]:
    """What query-block says of the drive's chain, paths shown as ``{dir}``."""
    def local(path: str | None) -> str:
        return (path or "").replace(str(directory), "{dir}")

    inserted = reply["return"][0]["inserted"]
    images, image = [], inserted["image"]
    while image is not None:
        images.append((local(image["filename"]), image["format"]))
        image = image.get("backing-image")
    return {"node-name": inserted.get("node-name"), "file": local(inserted["file"]),
            "backing_file": local(inserted.get("backing_file")),
            "depth": inserted["backing_file_depth"], "images": images}


def run(tmp_path: Path, commit: dict[str, Any]) -> list[dict[str, Any]]:
    results = run_scenario(tmp_path, chain, [
        Step("block-commit", {"device": "drive0", "speed": 1, **commit}, expect="ok"),
        Step("query-block", {}, compare_graph=False),
        Step("block-job-cancel", {"device": "drive0", "force": True}, compare_graph=False),
    ], peers=[("qemu-system", qemu_system_peer(drive)), ("engine", engine_peer(drive))])
    dirs = [tmp_path / "qemu-system", tmp_path / "engine"]
    shown = [medium(r, d) for r, d in zip(results[1].replies, dirs, strict=True)]
    assert shown[0] == shown[1]
    return shown


def test_an_implicit_commit_filter_is_not_shown(tmp_path: Path) -> None:
    shown = run(tmp_path, {"top": "{dir}/mid.qcow2", "base": "{dir}/base.qcow2"})
    assert shown[1]["depth"] == 2
    assert [f for f, _ in shown[1]["images"]] == \
        ["{dir}/top.qcow2", "{dir}/mid.qcow2", "{dir}/base.qcow2"]


def test_a_named_commit_filter_is_shown(tmp_path: Path) -> None:
    shown = run(tmp_path, {"top-node": "mid", "base-node": "base",
                           "filter-node-name": "commit-filter"})
    assert shown[1]["depth"] == 3

"""Rules for the editor's other edits (names, snapshots, stream, commit): each verdict
equals what a real qemu-storage-daemon 7.2 answers when the command is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.graph import rules
from tests.engine.test_rules import snapshot_of, verdict
from tests.support.qemu import QemuStorageDaemon, create

pytestmark = pytest.mark.qemu


def answer(qsd: QemuStorageDaemon, command: str, args: dict[str, Any]) -> str:
    reply = qsd.execute(command, args)
    return reply["error"]["desc"] if "error" in reply else "ok"


@pytest.fixture
def chain(qsd: QemuStorageDaemon, tmp_path: Path) -> QemuStorageDaemon:
    """base <- mid <- top, top opened from headers too (auto-named copies not used)."""
    create(tmp_path / "base.qcow2", "1M")
    create(tmp_path / "mid.qcow2", "1M", backing=str(tmp_path / "base.qcow2"))
    create(tmp_path / "top.qcow2", "1M", backing=str(tmp_path / "mid.qcow2"))
    for name, backing in (("base", None), ("mid", "base"), ("top", "mid")):
        args: dict[str, Any] = {"driver": "qcow2", "node-name": name, "file": {
            "driver": "file", "filename": str(tmp_path / f"{name}.qcow2")}}
        if backing:
            args["backing"] = backing
        assert "return" in qsd.execute("blockdev-add", args)
    return qsd


def test_reopen_of_an_auto_named_node(chain: QemuStorageDaemon) -> None:
    snap = snapshot_of(chain)
    auto = snap.child("top", "file")
    assert auto.startswith("#")
    expected = answer(chain, "blockdev-reopen", {"options": [
        {"driver": "file", "node-name": auto, "filename": snap.nodes[auto].filename}]})
    assert verdict(rules.check_reopen_by_name, snap, auto) == expected
    assert verdict(rules.check_reopen_by_name, snap, "top") == "ok"


@pytest.mark.parametrize("name", ["1abc", "a b", "x" * 32, "top", "fresh"])
def test_new_node_names(chain: QemuStorageDaemon, name: str) -> None:
    snap = snapshot_of(chain)
    expected = answer(chain, "blockdev-add", {"driver": "null-co", "node-name": name})
    assert verdict(rules.check_new_node_name, snap, name) == expected


@pytest.mark.parametrize("node", ["base", "mid", "top", "nonexist"])
def test_snapshot_node(chain: QemuStorageDaemon, node: str, tmp_path: Path) -> None:
    create(tmp_path / "ov.qcow2", "1M")
    chain.execute("blockdev-add", {"driver": "qcow2", "node-name": "ov", "backing": None,
                                   "file": {"driver": "file",
                                            "filename": str(tmp_path / "ov.qcow2")}})
    snap = snapshot_of(chain)
    expected = answer(chain, "blockdev-snapshot", {"node": node, "overlay": "ov"})
    assert verdict(rules.check_snapshot_node, snap, node) == expected


@pytest.mark.parametrize(("device", "base"), [
    ("top", "top"), ("mid", "top"), ("top", "nonexist"), ("nonexist", None)])
def test_stream_verdicts(chain: QemuStorageDaemon, device: str, base: str | None) -> None:
    snap = snapshot_of(chain)
    args: dict[str, Any] = {"job-id": "s0", "device": device}
    if base is not None:
        args["base-node"] = base
    expected = answer(chain, "block-stream", args)
    assert expected != "ok"
    assert verdict(rules.check_stream, snap, device, base) == expected


@pytest.mark.parametrize(("device", "top", "base"), [
    ("top", "mid", "mid"), ("top", "base", "mid"), ("mid", "mid", "base"),
    ("nonexist", "top", None)])
def test_commit_verdicts(chain: QemuStorageDaemon, device: str, top: str,
                         base: str | None) -> None:
    snap = snapshot_of(chain)
    args: dict[str, Any] = {"job-id": "c0", "device": device, "top-node": top}
    if base is not None:
        args["base-node"] = base
    expected = answer(chain, "block-commit", args)
    assert expected != "ok"
    assert verdict(rules.check_commit, snap, device, top, base) == expected


@pytest.mark.parametrize(("device", "target", "extra"), [
    ("top", "top", {}), ("top", "mid", {}), ("top", "nonexist", {}), ("mid", "ov", {}),
    ("nonexist", "ov", {}), ("top", "ov", {"replaces": "mid"}),
    ("top", "ov", {"replaces": "nonexist"}), ("top", "ov", {"sync": "bitmap"}),
    ("top", "ov", {})])
def test_mirror_verdicts(chain: QemuStorageDaemon, tmp_path: Path, device: str, target: str,
                         extra: dict[str, Any]) -> None:
    create(tmp_path / "ov.qcow2", "1M")
    chain.execute("blockdev-add", {"driver": "qcow2", "node-name": "ov", "file": {
        "driver": "file", "filename": str(tmp_path / "ov.qcow2")}})
    snap = snapshot_of(chain)
    sync = extra.get("sync", "full")
    expected = answer(chain, "blockdev-mirror", {"job-id": "m0", "device": device,
                                                 "target": target, "sync": sync,
                                                 **{k: v for k, v in extra.items()
                                                    if k != "sync"}})
    assert verdict(lambda: rules.check_mirror(snap, device, target, sync,
                                              replaces=extra.get("replaces"),
                                              job_id="m0")) == expected


@pytest.mark.parametrize("other_parent", [False, True])
def test_mirror_replacing_a_quorum_child(qsd: QemuStorageDaemon, tmp_path: Path,
                                         other_parent: bool) -> None:
    """A quorum child may be replaced by the mirror of the quorum while only the quorum
    uses it."""
    for name in ("img1", "img2", "ov"):
        create(tmp_path / f"{name}.qcow2", "1M")
        assert "return" in qsd.execute("blockdev-add", {
            "driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": str(tmp_path / f"{name}.qcow2")}})
    assert "return" in qsd.execute("blockdev-add", {
        "driver": "quorum", "node-name": "quorum0", "vote-threshold": 1,
        "children": ["img1", "img2"]})
    if other_parent:
        assert "return" in qsd.execute("blockdev-add", {
            "driver": "copy-on-read", "node-name": "cor", "file": "img1"})
    snap = snapshot_of(qsd)
    expected = answer(qsd, "blockdev-mirror", {"job-id": "m0", "device": "quorum0",
                                               "target": "ov", "sync": "full",
                                               "replaces": "img1"})
    assert (expected == "ok") is not other_parent
    assert verdict(lambda: rules.check_mirror(snap, "quorum0", "ov", "full",
                                              replaces="img1", job_id="m0")) == expected

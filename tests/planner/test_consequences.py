"""The consequences of an edit for each reader, checked against QEMU's own tools.

The demo chains (base <- vm1-mid <- vm1-top, vm2-top and vm3-top over base; every layer
holds its own fill byte) are opened on the bundled engine with a drive on each VM's top.
Byte counts are compared with ``qemu-img map`` of the chain before and after; where an
edit is run, the guest bytes read by ``qemu-img convert`` before and after are compared
with what the consequences said would change.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.graph.snapshot import GraphSnapshot
from engine.qmp import Engine
from gui.executor.allocation import NotReadableHere, local_allocation
from gui.images.demo import CHAIN, create_images
from gui.planner import PlanContext, plan_intent
from gui.planner.consequences import (
    Consequences,
    ReaderChange,
    consequences_of,
    dangers,
    size_text,
    undo_refusals,
)
from gui.planner.intents import ChangeMedium, Commit, ExternalSnapshot, SetBacking, Stream
from tests.support.layer_maps import chain_name, changes, qemu_map, sources
from tests.support.qemu import qemu_img


class Demo:
    def __init__(self, directory: Path, drives: bool = True) -> None:
        self.dir = directory
        self.paths = {k: str(v) for k, v in create_images(directory).items()}
        self.engine = Engine(rng_seed=1)
        self.events: list[dict[str, Any]] = []
        self.engine.add_listener(self.events.append)
        for name, backing, ro, vm in CHAIN:
            opts: dict[str, Any] = {
                "driver": "qcow2", "node-name": name, "backing": backing,
                "file": {"driver": "file", "node-name": f"{name}-file",
                         "filename": self.paths[name]}}
            if ro:
                opts["read-only"] = True
            self.engine.execute("blockdev-add", opts)
            if vm and drives:
                self.engine.add_backend(vm, name)

    @property
    def graph(self) -> GraphSnapshot:
        return self.engine.graph.snapshot()

    def wait_job(self, job_id: str, timeout: float = 30) -> None:
        """Until the job is gone (completing an active commit when it is ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = {j["id"]: j for j in self.engine.execute("query-jobs")}
            job = jobs.get(job_id)
            if job is None:
                return
            if job["status"] == "ready":
                self.engine.execute("job-complete", {"id": job_id})
            time.sleep(0.01)
        raise AssertionError(f"job {job_id} did not end")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = Demo(tmp_path / "demo")
    yield d
    d.engine.close()


def guest(path: str, out: Path) -> bytes:
    """The guest's bytes of the chain topped by ``path``, read by qemu-img."""
    qemu_img("convert", "-U", "-O", "raw", path, str(out))
    return out.read_bytes()


def differing(a: bytes, b: bytes, step: int = 1 << 16) -> int:
    """How many bytes differ between ``a`` and ``b`` (same length)."""
    n = 0
    for i in range(0, len(a), step):
        x, y = a[i:i + step], b[i:i + step]
        if x != y:
            n += sum(p != q for p, q in zip(x, y, strict=True))
    return n


def test_a_re_point_under_a_drive_counts_what_qemu_img_map_counts(demo: Demo) -> None:
    ctx = PlanContext(demo.graph)
    plan = plan_intent(ctx, SetBacking("vm1-top", "base"))
    found = consequences_of(ctx, plan, local_allocation)
    (reader,) = found.readers
    assert reader.key == "backend:vm1" and reader.attached
    assert reader.left == ("vm1-mid",) and reader.joined == ()
    p = demo.paths
    before = sources(qemu_map(p["vm1-top"]), ["vm1-top", "vm1-mid", "base"])
    after = sources(qemu_map(chain_name(p["vm1-top"], p["base"])), ["vm1-top", "base"])
    total, hidden, revealed = changes(before, after)
    assert total > 0
    assert reader.changed == total
    assert dict(reader.hidden) == hidden
    assert dict(reader.revealed) == revealed
    assert found.written == () and found.freed == ()
    assert any("still names vm1-mid.qcow2" in n for n in found.notes)
    text = "\n".join(found.lines())
    assert f"reads {size_text(total)} from other layers" in text
    assert f"{size_text(hidden['vm1-mid'])} of vm1-mid" in text


def test_a_commit_changes_what_the_other_overlays_of_its_base_read(
        demo: Demo, tmp_path: Path) -> None:
    """QEMU refuses this commit while the other overlays hold the base (they share no
    write on it), which is what the warning is for; what it would do to them is done
    here by qemu-img commit on copies of the images."""
    ctx = PlanContext(demo.graph)
    found = consequences_of(ctx, plan_intent(ctx, Commit("vm1-mid", "base")),
                            local_allocation)
    readers = {r.key: r for r in found.readers}
    assert readers["backend:vm1"].changed == 0 and readers["backend:vm1"].left == ("vm1-mid",)
    assert readers["backend:vm2"].changed and readers["backend:vm3"].changed
    assert found.written == (demo.paths["base"], demo.paths["vm1-top"])
    copies = tmp_path / "copies"
    copies.mkdir()
    for name in ("base", "vm1-mid", "vm1-top", "vm2-top"):
        shutil.copy(demo.paths[name], copies / f"{name}.qcow2")
    top1, top2 = str(copies / "vm1-top.qcow2"), str(copies / "vm2-top.qcow2")
    before = {1: guest(top1, tmp_path / "1a.raw"), 2: guest(top2, tmp_path / "2a.raw")}
    qemu_img("commit", "-b", str(copies / "base.qcow2"), str(copies / "vm1-mid.qcow2"))
    qemu_img("rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", top1)
    after = {1: guest(top1, tmp_path / "1b.raw"), 2: guest(top2, tmp_path / "2b.raw")}
    assert after[1] == before[1]
    assert differing(before[2], after[2]) == readers["backend:vm2"].changed


def test_an_active_commit_keeps_what_the_drive_reads(demo: Demo, tmp_path: Path) -> None:
    ctx = PlanContext(demo.graph)
    found = consequences_of(ctx, plan_intent(ctx, Commit("vm1-top", "vm1-mid")),
                            local_allocation)
    (reader,) = found.readers
    assert reader.changed == 0 and reader.before == ("vm1-top", "vm1-mid", "base")
    assert reader.after == ("vm1-mid", "base")
    assert found.written == (demo.paths["vm1-mid"],)
    before = guest(demo.paths["vm1-top"], tmp_path / "before.raw")
    demo.engine.execute("blockdev-reopen", {"options": [{
        "driver": "qcow2", "node-name": "vm1-mid", "read-only": False, "backing": "base",
        "file": "vm1-mid-file"}]})
    demo.engine.execute("block-commit", {"job-id": "c", "device": "vm1-top",
                                         "base-node": "vm1-mid"})
    demo.wait_job("c")
    assert guest(demo.paths["vm1-mid"], tmp_path / "after.raw") == before


def test_a_stream_moves_data_into_the_top_without_changing_what_is_read(
        demo: Demo, tmp_path: Path) -> None:
    p = demo.paths
    ctx = PlanContext(demo.graph)
    found = consequences_of(ctx, plan_intent(ctx, Stream("vm1-top")), local_allocation)
    (reader,) = found.readers
    assert reader.changed == 0 and reader.left == ("vm1-mid", "base")
    assert found.written == (p["vm1-top"],)
    before = guest(p["vm1-top"], tmp_path / "before.raw")
    demo.engine.execute("block-stream", {"job-id": "s", "device": "vm1-top"})
    demo.wait_job("s")
    assert guest(p["vm1-top"], tmp_path / "after.raw") == before


def test_a_snapshot_adds_an_empty_layer_and_writes_its_file(demo: Demo) -> None:
    ctx = PlanContext(demo.graph)
    new = str(demo.dir / "vm2-snap.qcow2")
    found = consequences_of(ctx, plan_intent(ctx, ExternalSnapshot("vm2-top", "s1", new)),
                            local_allocation)
    (reader,) = found.readers
    assert reader.key == "backend:vm2" and reader.joined == ("s1",) and reader.changed == 0
    assert found.written == (new,)


def test_re_pointing_away_from_an_implicit_chain_frees_it_and_its_undo_is_refused(
        tmp_path: Path) -> None:
    paths = {k: str(v) for k, v in create_images(tmp_path).items()}
    eng = Engine(rng_seed=2)
    try:
        eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "top", "file": {
            "driver": "file", "filename": paths["vm1-top"]}})     # its chain from the header
        eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "spare", "file": {
            "driver": "file", "filename": paths["spare"]}})
        eng.add_backend("vm1", "top")
        graph = eng.graph.snapshot()
        implicit = [k for k, n in graph.nodes.items() if n.auto_named]
        ctx = PlanContext(graph)
        plan = plan_intent(ctx, SetBacking("top", "spare"))
        found = consequences_of(ctx, plan, local_allocation)
        # vm1-mid and base, opened from the headers, and their file nodes: nothing holds
        # them once top's backing moves; top's and spare's own file nodes stay
        kept = {graph.child("top", "file"), graph.child("spare", "file")}
        assert len(implicit) == 6
        assert set(found.freed) == set(implicit) - kept
        # the planner offers no undo: the node it would link back to is gone by then
        assert plan.inverse is None and undo_refusals(ctx, plan, found) == []
        assert plan.irreversible is not None and "QEMU closes it" in plan.irreversible
        assert any(k in plan.irreversible for k in found.freed)
        # and QEMU (here the engine, which follows it) frees them
        eng.execute("blockdev-reopen", {"options": [dict(plan.reopened["top"])]})
        left = eng.graph.snapshot()
        assert not set(found.freed) & set(left.nodes)
    finally:
        eng.close()


def test_counts_are_unknown_when_a_layer_cannot_be_read_here(demo: Demo) -> None:
    def nothing_of_base(graph: GraphSnapshot, key: str) -> list[tuple[int, int]]:
        if key == "base":
            raise NotReadableHere("no file base.qcow2 on this machine")
        return local_allocation(graph, key)

    ctx = PlanContext(demo.graph)
    found = consequences_of(ctx, plan_intent(ctx, SetBacking("vm1-top", "base")),
                            nothing_of_base)
    (reader,) = found.readers
    assert reader.changed is None and reader.content_changes is None
    assert "base" in reader.unknown and "no file base.qcow2" in reader.unknown
    assert found.attached_changes == [reader]
    assert "unknown" in found.lines()[0]


def test_the_warning_says_how_the_vm_stands_and_none_for_a_medium_change() -> None:
    disk = ReaderChange("backend:vm1", "vm1 (VM drive)", True, ("top", "mid"), ("top",),
                        changed=3 << 19)
    export = ReaderChange("backend:#top", "export e0", True, ("top", "mid"), ("top",),
                          changed=None)
    quiet = ReaderChange("top", "top", False, ("top", "mid"), ("top",), changed=1 << 20)
    same = ReaderChange("backend:vm2", "vm2 (VM drive)", True, ("a",), ("a", "b"), changed=0)
    found = Consequences(readers=(disk, export, quiet, same))
    edit = SetBacking("top", "base")
    running, shown_export = dangers(found, edit, "running")
    assert running.startswith("vm1 (VM drive) is a running VM's disk: the guest reads "
                              "other data in 1.5 MiB as soon as this is sent")
    assert shown_export.startswith("export e0 is an export: its clients read other data "
                                   "in an unknown amount")
    (paused, _) = dangers(found, edit, "paused")
    assert "a VM that is paused" in paused and "when it runs" in paused
    (unknown, _) = dangers(found, edit, "")
    assert "whether it is in use is not known" in unknown
    # nothing for readers that are not attached or read the same; nothing for a medium
    assert len(dangers(found, edit, "running")) == 2
    assert dangers(found, ChangeMedium("cd0", "/x.iso"), "running") == []

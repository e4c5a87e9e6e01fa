"""Every intent, planned on the live graph, executed, re-read and (where it has one)
undone — against every peer kind through the same QMP path. The resulting graph shape
is compared with a fixed expectation, so both peers must end in the same graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.graph.snapshot import GraphSnapshot
from gui.executor import PlanExecutor
from gui.planner import plan_intent
from gui.planner.intents import (
    AddImage,
    ChangeMedium,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.planner import plan_links, plan_staged
from gui.session import CommandFailed, Session
from tests.planner.test_links import add_by_reference, chain
from tests.support.peer import Peer
from tests.support.qemu import create, qemu_img, qemu_io

pytestmark = pytest.mark.qemu


def info(path: Path) -> dict[str, Any]:
    """The image header as qemu-img sees it, while the peer holds the image open."""
    return json.loads(qemu_img("info", "-U", "--output=json", str(path)).stdout)


def shape(graph: GraphSnapshot) -> dict[str, tuple[Any, ...]]:
    """User-named block nodes: driver, read-only, backing (through implicit filters),
    and the driver of the file child — what must match between peers."""
    out: dict[str, tuple[Any, ...]] = {}
    for node in graph.block_nodes():
        if node.auto_named:
            continue
        backing = graph.backing(node.key)
        file_child = graph.child(node.key, "file")
        out[node.key] = (node.driver, node.read_only, backing if backing is None or not
                         graph.nodes[backing].auto_named else "#auto",
                         graph.nodes[file_child].driver if file_child else None)
    return out


async def setup_chain(peer: Peer, session: Session, tmp_path: Path,
                      data: bool = False) -> dict[str, Path]:
    files = chain(tmp_path)
    if data:
        qemu_io(files["base"], "write -P 0x11 0 512k")
        qemu_io(files["mid"], "write -P 0x22 256k 256k")
    add_by_reference(peer.ok, files)
    await session.refresh(force=True)
    return files


async def run(session: Session, intent: Any) -> GraphSnapshot:
    plan = PlanExecutor(session).plan(intent)
    assert plan.ok, plan.refusals
    report = await PlanExecutor(session).run(plan)
    assert report.as_expected, report.mismatches
    return report.snapshot


async def undo(session: Session, intent: Any, before: GraphSnapshot) -> None:
    plan = plan_intent(PlanExecutor(session).context(), intent)
    await PlanExecutor(session).run(plan)
    assert plan.inverse is not None, plan.irreversible
    report = await PlanExecutor(session).run(plan.inverse)
    assert report.as_expected, report.mismatches
    assert shape(report.snapshot) == shape(before)


BEFORE = {"top": ("qcow2", False, "mid", "file"), "mid": ("qcow2", False, "base", "file"),
          "base": ("qcow2", False, None, "file")}


async def test_set_backing(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    await setup_chain(any_peer, any_session, tmp_path)
    before = any_session.snapshot
    assert shape(before) == BEFORE
    after = await run(any_session, SetBacking("top", "base"))
    assert shape(after)["top"] == ("qcow2", False, "base", "file")
    await PlanExecutor(any_session).run(PlanExecutor(any_session).plan(SetBacking("top", "mid")))
    await undo(any_session, SetBacking("top", "base"), before)


async def test_detach_backing(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    await setup_chain(any_peer, any_session, tmp_path)
    before = any_session.snapshot
    after = await run(any_session, DetachBacking("top"))
    assert shape(after)["top"] == ("qcow2", False, None, "file")
    await PlanExecutor(any_session).run(PlanExecutor(any_session).plan(SetBacking("top", "mid")))
    await undo(any_session, DetachBacking("top"), before)


async def test_read_only(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    await setup_chain(any_peer, any_session, tmp_path)
    before = any_session.snapshot
    after = await run(any_session, SetReadOnly("mid", True))
    assert shape(after)["mid"] == ("qcow2", True, "base", "file")
    assert after.nodes[after.child("mid", "file")].read_only    # inline child follows
    back = await run(any_session, SetReadOnly("mid", False))
    assert shape(back) == shape(before)
    assert not back.nodes[back.child("mid", "file")].read_only


async def test_staged_edits_are_one_atomic_reopen(any_peer: Peer, any_session: Session,
                                                  tmp_path: Path) -> None:
    await setup_chain(any_peer, any_session, tmp_path)
    before = any_session.snapshot
    ctx = PlanExecutor(any_session).context()
    plan = plan_staged(ctx, [SetBacking("top", "base"), SetReadOnly("mid", True),
                             DetachBacking("mid")])
    assert plan.ok and [c.command for c in plan.commands()] == ["blockdev-reopen"]
    assert [o["node-name"] for o in plan.commands()[0].arguments["options"]] == ["top", "mid"]
    assert '"execute": "blockdev-reopen"' in plan.as_json()
    report = await PlanExecutor(any_session).run(plan)
    assert report.as_expected, report.mismatches
    assert shape(report.snapshot)["top"][2] == "base"
    assert shape(report.snapshot)["mid"][1:3] == (True, None)
    undo_report = await PlanExecutor(any_session).run(plan.inverse)
    assert undo_report.as_expected, undo_report.mismatches
    assert shape(undo_report.snapshot) == shape(before)


async def test_staged_failure_changes_nothing(any_peer: Peer, any_session: Session,
                                              tmp_path: Path) -> None:
    """A staged list whose second edit QEMU refuses: nothing of the first is applied."""
    await setup_chain(any_peer, any_session, tmp_path)
    before = any_session.snapshot
    ctx = PlanExecutor(any_session).context()
    staged = [SetBacking("top", "base"), SetBacking("base", "mid")]
    assert not plan_staged(ctx, staged).ok           # preflight sees the cycle
    unchecked = plan_links(ctx, staged, "sent anyway")
    (command,) = unchecked.commands()
    with pytest.raises(CommandFailed, match="would create a cycle"):
        await any_session.execute(command.command, command.arguments)
    after = await any_session.refresh(force=True)
    assert shape(after) == shape(before)


async def test_external_snapshot(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    files = chain(tmp_path)
    any_peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "disk", "file": {
        "driver": "file", "filename": str(files["base"])}})
    before = await any_session.refresh(force=True)
    overlay = tmp_path / "snap1.qcow2"
    intent = ExternalSnapshot("disk", "snap1", str(overlay))
    plan = PlanExecutor(any_session).plan(intent)
    assert [s.command for s in plan.commands()] == [
        "blockdev-create", "blockdev-add", "blockdev-create", "blockdev-add",
        "blockdev-snapshot"]
    report = await PlanExecutor(any_session).run(plan)
    assert report.as_expected, report.mismatches
    assert shape(report.snapshot)["snap1"] == ("qcow2", False, "disk", "file")
    assert shape(report.snapshot)["disk"][1] is True          # old active layer read-only
    hdr = info(overlay)
    assert hdr["backing-filename"] == str(files["base"]) and hdr["virtual-size"] == 1 << 20
    assert not any_session.jobs                                  # create jobs dismissed
    undo_report = await PlanExecutor(any_session).run(plan.inverse)
    assert undo_report.as_expected, undo_report.mismatches
    assert shape(undo_report.snapshot) == shape(before)


async def test_stream(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    files = await setup_chain(any_peer, any_session, tmp_path, data=True)
    plan = PlanExecutor(any_session).plan(Stream("top", "base"))
    assert plan.inverse is None and "copied" in (plan.irreversible or "")
    after = await run(any_session, Stream("top", "base"))
    assert shape(after)["top"] == ("qcow2", False, "base", "file")
    assert shape(after)["mid"] == BEFORE["mid"]                 # monitor-owned: stays
    assert info(files["top"])["backing-filename"] == str(files["base"])


async def test_commit_intermediate(any_peer: Peer, any_session: Session,
                                   tmp_path: Path) -> None:
    files = await setup_chain(any_peer, any_session, tmp_path, data=True)
    after = await run(any_session, Commit("mid", "base"))
    assert shape(after)["top"] == ("qcow2", False, "base", "file")
    assert info(files["top"])["backing-filename"] == str(files["base"])


async def test_commit_active(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    files = await setup_chain(any_peer, any_session, tmp_path, data=True)
    plan = PlanExecutor(any_session).plan(Commit("top", "mid"))
    assert [s.command for s in plan.commands()] == ["block-commit", "job-complete"]
    after = await run(any_session, Commit("top", "mid"))
    assert shape(after) == BEFORE                  # no users: top stays, chain unchanged
    assert not any_session.jobs
    assert info(files["top"])["backing-filename"] == str(files["mid"])


async def test_delete_and_undo(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    await setup_chain(any_peer, any_session, tmp_path)
    before = any_session.snapshot
    after = await run(any_session, Delete("top"))
    assert "top" not in after.nodes
    assert not any(n.filename.endswith("top.qcow2") for n in after.block_nodes())
    await PlanExecutor(any_session).run(PlanExecutor(any_session).plan(
        AddImage("top", before.nodes["top"].filename, with_chain=False)))
    await PlanExecutor(any_session).run(PlanExecutor(any_session).plan(SetBacking("top", "mid")))
    await undo(any_session, Delete("top"), before)


async def test_add_image_with_and_without_chain(any_peer: Peer, any_session: Session,
                                                tmp_path: Path) -> None:
    files = chain(tmp_path)
    before = await any_session.refresh(force=True)
    after = await run(any_session, AddImage("t", str(files["top"])))
    t = shape(after)["t"]
    assert t == ("qcow2", False, "#auto", "file")
    depth = 0
    cur = after.backing("t")
    while cur is not None:
        depth += 1
        assert after.nodes[cur].read_only
        cur = after.backing(cur)
    assert depth == 2
    other = create(tmp_path / "other.qcow2", "1M", backing=str(files["base"]))
    await undo(any_session, AddImage("u", str(other), with_chain=False), after)
    # the same image read-write while t's chain holds it read-only: QEMU's lock refuses
    with pytest.raises(CommandFailed, match='Failed to get "write" lock'):
        await PlanExecutor(any_session).run(
            PlanExecutor(any_session).plan(AddImage("v", str(files["mid"]))))
    plan = PlanExecutor(any_session).plan(AddImage("u", str(other), with_chain=False))
    plain = await PlanExecutor(any_session).run(plan)
    assert shape(plain.snapshot)["u"] == ("qcow2", False, None, "file")
    await PlanExecutor(any_session).run(plan.inverse)
    await PlanExecutor(any_session).run(PlanExecutor(any_session).plan(Delete("t")))
    assert shape(await any_session.refresh(force=True)) == shape(before)


async def test_change_medium(any_peer: Peer, any_session: Session, tmp_path: Path) -> None:
    """On a peer with removable drives: insert, swap back (undo), eject. On one without
    (qemu-storage-daemon): refused with the peer's own answer to the command."""
    caps = any_session.capabilities
    if not caps.has_removable_media:
        plan = PlanExecutor(any_session).plan(ChangeMedium("cd0", "/nonexistent.iso"))
        assert not plan.ok
        with pytest.raises(CommandFailed) as exc:
            await any_session.execute("blockdev-change-medium",
                                      {"id": "cd0", "filename": "/nonexistent.iso"})
        assert str(plan.refusals[0]) == str(exc.value)
        assert exc.value.error_class == plan.refusals[0].error_class == "CommandNotFound"
        return
    files = chain(tmp_path)
    other = create(tmp_path / "disc2.qcow2", "1M")
    missing = PlanExecutor(any_session).plan(ChangeMedium("cd0", str(files["base"]), "qcow2"))
    with pytest.raises(CommandFailed) as exc:
        await any_session.execute("blockdev-change-medium", {
            "id": "cd0", "filename": str(files["base"]), "format": "qcow2"})
    assert [str(r) for r in missing.refusals] == [str(exc.value)]
    any_peer.ok("x-blockgraph-device-add", {"id": "cd0", "removable": True})
    await any_session.refresh(force=True)

    def medium(graph: GraphSnapshot) -> str | None:
        root = graph.child("backend:cd0", "root")
        return graph.nodes[root].filename if root else None

    first = await run(any_session, ChangeMedium("cd0", str(files["base"]), "qcow2"))
    assert medium(first) == str(files["base"])
    plan = PlanExecutor(any_session).plan(ChangeMedium("cd0", str(other), "qcow2"))
    second = (await PlanExecutor(any_session).run(plan)).snapshot
    assert medium(second) == str(other)
    back = await PlanExecutor(any_session).run(plan.inverse)
    assert medium(back.snapshot) == str(files["base"])
    ejected = await run(any_session, ChangeMedium("cd0", None))
    assert medium(ejected) is None


async def test_staged_snapshots_are_one_transaction(any_peer: Peer, any_session: Session,
                                                    tmp_path: Path) -> None:
    files = chain(tmp_path)
    for name in ("base", "top"):
        any_peer.ok("blockdev-add", {"driver": "qcow2", "node-name": f"d-{name}",
                                     "backing": None, "file": {
                                         "driver": "file", "filename": str(files[name])}})
    before = await any_session.refresh(force=True)
    ctx = PlanExecutor(any_session).context()
    intents = [ExternalSnapshot("d-base", "s-base", str(tmp_path / "s-base.qcow2")),
               ExternalSnapshot("d-top", "s-top", str(tmp_path / "s-top.qcow2"))]
    clash = plan_staged(ctx, [intents[0], ExternalSnapshot("d-top", "s-base", "/x")])
    assert [str(r) for r in clash.refusals] == ["Duplicate nodes with node-name='s-base'"]
    plan = plan_staged(ctx, intents)
    assert plan.ok and plan.commands()[-1].command == "transaction"
    assert [a["data"] for a in plan.commands()[-1].arguments["actions"]] == [
        {"node": "d-base", "overlay": "s-base"}, {"node": "d-top", "overlay": "s-top"}]
    report = await PlanExecutor(any_session).run(plan)
    assert report.as_expected, report.mismatches
    after = shape(report.snapshot)
    assert after["s-base"][2] == "d-base" and after["s-top"][2] == "d-top"
    assert after["d-base"][1] is True and after["d-top"][1] is True
    undo = await PlanExecutor(any_session).run(plan.inverse)
    assert undo.as_expected, undo.mismatches
    assert shape(undo.snapshot) == shape(before)

"""Link edits planned on a live graph, executed, re-read and undone; options survive."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.executor import PlanExecutor
from gui.planner.intents import DetachBacking, SetBacking, SetReadOnly
from gui.session import Session
from tests.support.peer import Peer
from tests.support.qemu import create

pytestmark = pytest.mark.qemu


def chain(tmp_path: Path) -> dict[str, Path]:
    """base <- mid <- top (qcow2 files, 1 MiB)."""
    base = create(tmp_path / "base.qcow2", "1M")
    mid = create(tmp_path / "mid.qcow2", "1M", backing=str(base))
    top = create(tmp_path / "top.qcow2", "1M", backing=str(mid))
    return {"base": base, "mid": mid, "top": top}


def add_by_reference(add, files: dict[str, Path], **top_options) -> None:
    add("blockdev-add", {"driver": "qcow2", "node-name": "base",
                         "file": {"driver": "file", "filename": str(files["base"])}})
    add("blockdev-add", {"driver": "qcow2", "node-name": "mid", "backing": "base",
                         "file": {"driver": "file", "filename": str(files["mid"])}})
    add("blockdev-add", {"driver": "qcow2", "node-name": "top", "backing": "mid",
                         "file": {"driver": "file", "filename": str(files["top"])},
                         **top_options})


def links(snapshot) -> dict[str, str | None]:
    return {k: snapshot.backing(k) for k in ("top", "mid", "base") if k in snapshot.nodes}


async def test_set_backing_and_undo_on_nodes_added_elsewhere(
    peer: Peer, session: Session, tmp_path: Path
) -> None:
    add_by_reference(peer.ok, chain(tmp_path))
    before = await session.refresh(force=True)
    assert links(before) == {"top": "mid", "mid": "base", "base": None}

    plan = PlanExecutor(session).plan(SetBacking("top", "base"))
    assert plan.ok and plan.commands()[0].command == "blockdev-reopen"
    (entry,) = plan.commands()[0].arguments["options"]
    assert entry["node-name"] == "top" and entry["backing"] == "base"
    assert entry["file"] == before.child("top", "file")     # kept by reference
    report = await PlanExecutor(session).run(plan)
    assert report.as_expected, report.mismatches
    assert links(report.snapshot)["top"] == "base"

    undo = await PlanExecutor(session).run(plan.inverse)
    assert undo.as_expected, undo.mismatches
    assert links(undo.snapshot) == links(before)
    assert {k: n.read_only for k, n in undo.snapshot.nodes.items()} == {
        k: n.read_only for k, n in before.nodes.items()}


async def test_detach_and_reattach(peer: Peer, session: Session, tmp_path: Path) -> None:
    add_by_reference(peer.ok, chain(tmp_path))
    await session.refresh(force=True)
    report = await PlanExecutor(session).run(PlanExecutor(session).plan(DetachBacking("mid")))
    assert report.as_expected and links(report.snapshot)["mid"] is None
    # the header still names base: the next reopen must say backing: null (spec §3.4)
    plan = PlanExecutor(session).plan(SetReadOnly("mid", True))
    assert plan.commands()[0].arguments["options"][0]["backing"] is None
    report = await PlanExecutor(session).run(plan)
    assert report.as_expected, report.mismatches
    report = await PlanExecutor(session).run(report.plan.inverse)
    assert report.as_expected
    undo = await PlanExecutor(session).run(PlanExecutor(session).plan(SetBacking("mid", "base")))
    assert links(undo.snapshot)["mid"] == "base"


@pytest.mark.parametrize("added_by", ["session", "other client"])
async def test_rebase_keeps_non_default_options(
    any_peer: Peer, any_session: Session, added_by: str, tmp_path: Path
) -> None:
    """cache.direct, detect-zeroes/discard and read-only survive a re-point of the backing
    (on both peers; checked with the peer's own query afterwards)."""
    options = {"cache": {"direct": True, "no-flush": False}, "discard": "unmap",
               "detect-zeroes": "unmap", "read-only": True}
    files = chain(tmp_path)
    for cmd, args in _adds(files, options):
        if added_by == "session":
            await any_session.execute(cmd, args)
        else:
            any_peer.ok(cmd, args)
    await any_session.refresh(force=True)
    report = await PlanExecutor(any_session).run(
        PlanExecutor(any_session).plan(SetBacking("top", "base")))
    assert report.as_expected, report.mismatches
    nodes = {n["node-name"]: n for n in any_peer.ok("query-named-block-nodes", {"flat": True})}
    top = nodes["top"]
    assert top["backing_file"] == str(files["base"])
    assert top["cache"]["direct"] is True
    assert top["detect_zeroes"] == "unmap"
    assert top["ro"] is True


def _adds(files: dict[str, Path], top_options: dict) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    add_by_reference(lambda cmd, args: out.append((cmd, args)), files, **top_options)
    return out

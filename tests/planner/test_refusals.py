"""Refused intents: refused before anything is sent, with the text the peer itself gives
(checked by sending the unchecked plan anyway — to qemu-storage-daemon 7.2 and to the
bundled engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.executor import PlanExecutor
from gui.planner import plan_intent
from gui.planner.intents import AddImage, Delete, SetBacking
from gui.session import CommandFailed, PreflightRefused, Session
from tests.planner.test_links import add_by_reference, chain
from tests.support.peer import Peer
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu


async def refused_then_sent(session: Session, intent) -> tuple[str, str]:
    """Preflight's text (asserting nothing was sent) and QEMU's answer to the real thing."""
    plan = PlanExecutor(session).plan(intent)
    assert not plan.ok and plan.steps == ()
    mark = session.traffic.last_seq
    with pytest.raises(PreflightRefused) as info:
        await PlanExecutor(session).run(plan)
    assert [e for e in session.traffic.since(mark) if not e.background] == []
    ours = str(info.value.reasons[0])
    unchecked = plan_intent(PlanExecutor(session).context(), intent, check=False)
    assert unchecked.steps
    with pytest.raises(CommandFailed) as qemu:
        for cmd in unchecked.commands():
            await session.execute(cmd.command, cmd.arguments)
    return ours, str(qemu.value)


async def test_cycle_is_refused_with_qemus_text(any_peer: Peer, any_session: Session,
                                                tmp_path: Path) -> None:
    add_by_reference(any_peer.ok, chain(tmp_path))
    await any_session.refresh(force=True)
    ours, qemu = await refused_then_sent(any_session, SetBacking("base", "top"))
    assert ours == qemu == "Making 'top' a backing child of 'base' would create a cycle"


async def test_deleting_a_node_in_use_is_refused(any_peer: Peer, any_session: Session,
                                                 tmp_path: Path) -> None:
    add_by_reference(any_peer.ok, chain(tmp_path))
    await any_session.refresh(force=True)
    ours, qemu = await refused_then_sent(any_session, Delete("mid"))
    assert ours == qemu == "Node 'mid' is busy: node is used as backing hd of 'top'"


async def test_backing_through_an_implicit_filter_is_refused(
    any_peer: Peer, any_session: Session, tmp_path: Path
) -> None:
    files = chain(tmp_path)
    qemu_io(files["base"], "write -P 0x11 0 1M")
    add_by_reference(any_peer.ok, files)
    # a slow stream puts an implicit (auto-named) copy-on-read filter above mid
    any_peer.ok("block-stream", {"job-id": "s0", "device": "mid", "speed": 1})
    snap = await any_session.refresh(force=True)
    filt = snap.backing("top")
    assert filt is not None and snap.nodes[filt].implicit
    try:
        ours, qemu = await refused_then_sent(any_session, SetBacking("top", "base"))
        assert ours == qemu == "Cannot replace implicit backing child of top"
    finally:
        any_peer.execute("block-job-cancel", {"device": "s0", "force": True})  # may have ended


async def test_opening_an_image_on_a_missing_backing_or_a_taken_file_name_is_refused(
    any_peer: Peer, any_session: Session, tmp_path: Path
) -> None:
    """AddImage with the layer below given by name (as the demo opens its chains) and its
    file node named: a backing that does not exist, and a file node name already taken."""
    files = chain(tmp_path)
    add_by_reference(any_peer.ok, files)
    await any_session.refresh(force=True)
    other = create(tmp_path / "other.qcow2", "1M")
    ours, qemu = await refused_then_sent(any_session, AddImage(
        "o", str(other), with_chain=False, file_node="o-file", backing="nope"))
    assert ours == qemu == ("Could not open backing file: Cannot find device='nope' "
                            "nor node-name='nope'")
    ours, qemu = await refused_then_sent(any_session, AddImage(
        "o", str(other), with_chain=False, file_node="mid", backing="base"))
    assert ours == qemu == "Duplicate nodes with node-name='mid'"

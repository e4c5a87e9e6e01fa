"""The session against a peer that drops the connection, stalls, or answers garbage.

The peer is :class:`tests.faults.fake_peer.FaultyPeer` (real QMP bytes from the
bundled engine over a unix socket, until the fault). In each case the caller gets a
:class:`~gui.session.errors.SessionError` with a sentence that says what happened
and that the outcome is unknown, the session's state says so too, nothing is
written to the images, and once the peer behaves again the session reconnects and
shows the real graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.server.inprocess import InProcessServer
from gui.session import Session
from gui.session.errors import ConnectFailed, Disconnected
from gui.session.session import ConnectionStatus
from tests.faults.fake_peer import FaultyPeer
from tests.faults.support import check_intact
from tests.support.qemu import create

#: the limit for replies that do come (the stalled command gets 1 s)
GENEROUS = 30.0


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[FaultyPeer]:
    create(tmp_path / "disk.qcow2", 1 << 20)
    server = InProcessServer(root=tmp_path)
    fake = FaultyPeer(tmp_path / "peer.sock", server.connect)
    yield fake
    fake.close()
    server.close()


@pytest.fixture
async def session(peer: FaultyPeer) -> AsyncIterator[Session]:
    s = Session(f"unix:{peer.path}", poll_interval=None, command_timeout=GENEROUS,
                reconnect_delays=(0.05, 0.2))
    await s.connect()
    yield s
    await s.close()


def _add(tmp: Path) -> dict:  # type: ignore[type-arg]
    return {"driver": "qcow2", "node-name": "disk",
            "file": {"driver": "file", "filename": str(tmp / "disk.qcow2")}}


async def _until_connected(s: Session, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while s.state.status is not ConnectionStatus.CONNECTED:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode,text", [
    ("drop", "connection lost during blockdev-add — outcome unknown"),
    ("stall", "no reply to blockdev-add within 1 s — outcome unknown"),
    ("garbage", "connection lost during blockdev-add — outcome unknown"),
])
async def test_misbehaving_peer_mid_command(peer: FaultyPeer, session: Session, tmp_path: Path,
                                            mode: str, text: str) -> None:
    states: list[ConnectionStatus] = []
    session.on_connection_state(lambda st: states.append(st.status))
    peer.fault = (mode, "blockdev-add")
    # only the faulty command runs under the short limit: the real engine's replies
    # before and after it may take more than a second on a busy machine
    session.command_timeout = 1.0
    with pytest.raises(Disconnected) as exc:
        await session.execute("blockdev-add", _add(tmp_path))
    session.command_timeout = GENEROUS
    assert peer.triggered == 1
    assert exc.value.outcome_unknown
    assert str(exc.value) == text, repr(exc.value.__cause__)
    async with asyncio.timeout(10):   # the session notices and says so ...
        while ConnectionStatus.LOST not in states:
            await asyncio.sleep(0.01)
    await _until_connected(session)   # ... and reconnects once the peer behaves
    # the command never reached the engine: the re-read graph has no such node
    snap = session.snapshot
    assert snap is not None and "disk" not in snap.nodes
    check_intact(tmp_path / "disk.qcow2")
    # and the session is usable again
    await session.execute("blockdev-add", _add(tmp_path))
    assert "disk" in (await session.refresh(force=True)).nodes


@pytest.mark.parametrize("greeting,reason", [
    ("silent", "no QMP greeting within 1 s"),
    ("garbage", "Did not understand Greeting"),
])
async def test_peer_that_does_not_greet(peer: FaultyPeer, greeting: str, reason: str) -> None:
    peer.greeting = greeting
    s = Session(f"unix:{peer.path}", poll_interval=None, command_timeout=1.0)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ConnectFailed) as exc:
                await s.connect()
        assert str(exc.value).startswith(f"cannot connect to unix:{peer.path}: ")
        assert reason in str(exc.value), str(exc.value)
        assert s.state.status is ConnectionStatus.DISCONNECTED
    finally:
        await s.close()

"""The session against a real qemu-storage-daemon 7.2: connect, capabilities, traffic,
refresh on poll and events, errors, and surviving a killed daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gui.session import (
    CommandFailed,
    ConnectFailed,
    ConnectionStatus,
    Disconnected,
    Session,
    parse_address,
)
from tests.support.peer import Peer

pytestmark = pytest.mark.qemu


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def test_parse_address() -> None:
    assert parse_address("unix:/run/q.sock").target == "/run/q.sock"
    assert parse_address("tcp:localhost:4444").target == ("localhost", 4444)
    assert parse_address("tcp:[::1]:4444").target == ("::1", 4444)
    assert parse_address("/run/q.sock").label == "unix:/run/q.sock"
    for bad in ("tcp:host", "tcp:host:port", "unix:", "ftp:x", ""):
        with pytest.raises(ValueError):
            parse_address(bad)


async def test_connect_detects_capabilities_and_reads_graph(peer: Peer) -> None:
    peer.ok("blockdev-add", {"driver": "null-co", "node-name": "n0"})
    states = []
    s = Session(peer.address, poll_interval=None)
    s.on_connection_state(lambda st: states.append(st.status))
    snapshot = await s.connect()
    try:
        caps = s.capabilities
        assert caps is not None and caps.version[:2] == (7, 2)
        assert caps.reopen_command == "blockdev-reopen"
        assert caps.has_debug_graph
        assert not caps.has_removable_media        # qemu-storage-daemon has no devices
        assert "n0" in snapshot.nodes and snapshot.nodes["n0"].driver == "null-co"
        assert states == [ConnectionStatus.CONNECTING, ConnectionStatus.CONNECTED]
        sent = s.traffic.sent_commands()
        assert sent[:3] == ["qmp_capabilities", "query-version", "query-commands"]
        assert "x-debug-query-block-graph" in sent
        assert {"flat": True} in [e.message.get("arguments") for e in s.traffic
                                  if e.summary == "query-named-block-nodes"]
        # never the non-flat node query (90 s on a 500-deep chain)
        assert all(e.message.get("arguments") == {"flat": True} for e in s.traffic
                   if e.summary == "query-named-block-nodes")
        kinds = [e.kind for e in s.traffic]
        assert kinds[0] == "greeting" and "reply" in kinds
        assert all(e.background for e in s.traffic if e.summary.startswith("query-"))
    finally:
        await s.close()
    assert s.state.status is ConnectionStatus.CLOSED


async def test_connect_failure_is_a_session_error(tmp_path: Path) -> None:
    s = Session(f"unix:{tmp_path}/nothing.sock", poll_interval=None)
    with pytest.raises(ConnectFailed):
        await s.connect()
    assert s.state.status is ConnectionStatus.DISCONNECTED
    with pytest.raises(Disconnected):
        await s.execute("query-version")
    await s.close()


async def test_command_failure_keeps_json_sent_and_received(session: Session) -> None:
    entries = []
    session.on_traffic(entries.append)
    with pytest.raises(CommandFailed) as info:
        await session.execute("blockdev-del", {"node-name": "nope"})
    err = info.value
    assert str(err) == "Failed to find node with node-name='nope'"
    assert err.error_class == "GenericError"
    assert err.sent["execute"] == "blockdev-del"
    assert err.sent["arguments"] == {"node-name": "nope"}
    assert err.received["error"]["desc"] == str(err)
    assert [e.direction for e in entries] == ["sent", "received"]
    assert entries[0].message == err.sent and not entries[0].background


async def test_poll_picks_up_changes_by_other_clients_and_skips_when_idle(
    peer: Peer, session: Session
) -> None:
    seen = []
    session.on_graph_changed(seen.append)
    peer.ok("blockdev-add", {"driver": "null-co", "node-name": "other"})
    await wait_for(lambda: seen and "other" in seen[-1].nodes)
    # idle: polls ask only the cheap debug graph
    mark = session.traffic.last_seq
    # three safety re-reads (every 0.2 s) with nothing changing in between
    await wait_for(lambda: len(session.traffic.sent_commands(since=mark)) >= 3)
    polled = session.traffic.sent_commands(since=mark)
    assert set(polled) == {"x-debug-query-block-graph"}
    assert len(seen) == 1


async def test_job_events_report_progress_and_refresh(any_session: Session,
                                                      tmp_path: Path) -> None:
    session = any_session
    caps = session.capabilities
    assert caps.reopen_command == "blockdev-reopen" and caps.has_debug_graph
    jobs = []
    session.on_job_progress(jobs.append)
    target = tmp_path / "new.img"
    await session.execute("blockdev-create", {"job-id": "c0", "options": {
        "driver": "file", "filename": str(target), "size": 0}})
    job = await session.wait_job("c0", ("concluded",), timeout=10)
    assert job.status == "concluded"
    await session.execute("job-dismiss", {"id": "c0"})
    await wait_for(lambda: any(j.status == "null" for j in jobs))
    statuses = [j.status for j in jobs if j.id == "c0"]
    assert statuses[:2] == ["created", "running"] and statuses[-1] == "null"
    assert target.exists()


async def test_killed_daemon_is_reported_and_session_reconnects(peer: Peer) -> None:
    peer.ok("blockdev-add", {"driver": "null-co", "node-name": "before"})
    s = Session(peer.address, poll_interval=0.2, reconnect_delays=(0.05, 0.2))
    states = []
    s.on_connection_state(lambda st: states.append((st.status, st.message)))
    await s.connect()
    try:
        assert "before" in s.snapshot.nodes
        peer.kill()
        await wait_for(lambda: s.state.status is not ConnectionStatus.CONNECTED)
        lost = [m for st, m in states if st is ConnectionStatus.LOST]
        assert lost and "outcome unknown" in lost[0]
        with pytest.raises(Disconnected):
            await s.execute("query-version")
        # at least one retry fails against the missing socket before it is back
        await wait_for(lambda: any("retrying" in m for _, m in states))
        peer.start()
        peer.ok("blockdev-add", {"driver": "null-co", "node-name": "after"})
        await wait_for(lambda: s.connected, timeout=10)
        assert "after" in s.snapshot.nodes and "before" not in s.snapshot.nodes
        assert await s.execute("query-version")
    finally:
        await s.close()


async def test_command_in_flight_when_daemon_dies_has_unknown_outcome(peer: Peer) -> None:
    s = Session(peer.address, poll_interval=None, auto_reconnect=False)
    await s.connect()
    try:
        # a create job on a fifo blocks the daemon... simpler: kill while a command is queued
        task = asyncio.ensure_future(s.execute("query-named-block-nodes", {"flat": True}))
        peer.kill()
        try:
            await task
        except Disconnected as exc:
            assert exc.outcome_unknown
        await wait_for(lambda: s.state.status is ConnectionStatus.LOST)
        assert s.state.status is ConnectionStatus.LOST
    finally:
        await s.close()


async def test_explicit_reconnect_rereads_graph(peer: Peer, session: Session) -> None:
    peer.ok("blockdev-add", {"driver": "null-co", "node-name": "x1"})
    snapshot = await session.reconnect()
    assert "x1" in snapshot.nodes and session.connected


async def test_connects_over_tcp(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.support.qemu import QSD

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [QSD, "--chardev", f"socket,host=127.0.0.1,port={port},server=on,wait=off,id=t0",
         "--monitor", "chardev=t0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = Session(f"tcp:127.0.0.1:{port}", poll_interval=None, auto_reconnect=False)
    try:
        deadline = asyncio.get_running_loop().time() + 30   # until the daemon listens
        while True:
            try:
                snapshot = await s.connect()
                break
            except ConnectFailed:
                assert proc.poll() is None, "qemu-storage-daemon exited"
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.02)
        assert s.connected and snapshot.nodes == {}
        assert s.state.address == f"tcp:127.0.0.1:{port}"
        await s.execute("blockdev-add", {"driver": "null-co", "node-name": "t"})
        assert "t" in (await s.refresh()).nodes
    finally:
        await s.close()
        proc.terminate()
        proc.wait(5)


def test_traffic_log_is_bounded() -> None:
    from gui.session import TrafficLog

    log = TrafficLog(limit=3)
    for i in range(5):
        log.record("sent", {"execute": f"c{i}"})
    assert [e.summary for e in log] == ["c2", "c3", "c4"]
    assert [e.seq for e in log.since(3)] == [4, 5] and log.last_seq == 5


async def test_blockgraph_serve_socket_and_its_loss(tmp_path: Path) -> None:
    """The bundled engine served by `blockgraph serve`: same session code; when the server
    exits the loss is reported, and a new server on the same socket is picked up."""
    import subprocess
    import sys

    sock = tmp_path / "serve.sock"

    def serve() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "gui.cli", "serve", "--socket", str(sock)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    proc = serve()
    s = Session(f"unix:{sock}", poll_interval=0.2, reconnect_delays=(0.05, 0.2))
    try:
        for _ in range(300):
            try:
                await s.connect()
                break
            except ConnectFailed:
                await asyncio.sleep(0.05)
        assert s.connected and s.capabilities.reopen_command == "blockdev-reopen"
        await s.execute("blockdev-add", {"driver": "null-co", "node-name": "e0"})
        assert "e0" in (await s.refresh()).nodes
        proc.terminate()
        proc.wait(10)
        await wait_for(lambda: s.state.status is ConnectionStatus.LOST)
        proc = serve()
        await wait_for(lambda: s.connected, timeout=20)
        assert "e0" not in s.snapshot.nodes            # a fresh engine, graph re-read
    finally:
        await s.close()
        proc.terminate()
        proc.wait(10)

"""The bundled engine reached through qemu.qmp over an in-process socket pair."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path

import pytest
from qemu.qmp import EventListener, ExecuteError, QMPClient

from engine.server.inprocess import InProcessServer
from tests.server.support import RawClient
from tests.support.processes import wait_until
from tests.support.qemu import create


async def test_qmpclient_connects_to_a_socket_pair(tmp_path: Path) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    with InProcessServer() as server:
        client = QMPClient("bundled")
        await client.connect(server.connect())
        try:
            assert client.greeting is not None
            assert client.greeting.QMP.version["qemu"]["major"] == 7
            assert "oob" in client.greeting.QMP.capabilities
            await client.execute("blockdev-add", {
                "driver": "qcow2", "node-name": "d",
                "file": {"driver": "file", "filename": str(img)}})
            nodes = await client.execute("query-named-block-nodes", {"flat": True})
            assert {n["node-name"] for n in nodes} == {"d"} | {
                n["node-name"] for n in nodes if n["drv"] == "file"}
            with pytest.raises(ExecuteError) as err:
                await client.execute("blockdev-del", {"node-name": "nope"})
            assert err.value.error_class == "GenericError"
            # events arrive through qemu.qmp's listener machinery as from QEMU
            listener = EventListener()
            with client.listen(listener):
                await client.execute("blockdev-create", {"job-id": "c1", "options": {
                    "driver": "file", "filename": str(tmp_path / "new.img"), "size": 0}})
                event = await asyncio.wait_for(listener.get(), 10)
            assert event["event"] == "JOB_STATUS_CHANGE"
            assert event["data"] == {"id": "c1", "status": "created"}
        finally:
            await client.disconnect()
    assert not server.running


def test_two_clients_share_one_engine_and_close_stops_everything(tmp_path: Path) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    server = InProcessServer()
    a = RawClient(server.connect()).negotiate()
    b = RawClient(server.connect()).negotiate()
    assert a.cmd("blockdev-add", {"driver": "qcow2", "node-name": "d0", "file": {
        "driver": "file", "filename": str(img)}}) == {"return": {}}
    nodes = b.cmd("query-named-block-nodes")["return"]
    assert [n["node-name"] for n in nodes if n["drv"] == "qcow2"] == ["d0"]
    server.close()
    assert not server.running
    assert a.line() == b"" and b.line() == b""
    with pytest.raises(RuntimeError):
        server.connect()
    a.close()
    b.close()


def test_quit_over_the_socket_pair_closes_the_engine() -> None:
    closed: list[bool] = []

    class Engine:
        def execute(self, command: str, arguments: dict | None = None) -> object:
            return {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""} \
                if command == "query-version" else {}

        def add_listener(self, callback: object) -> object:
            return lambda: None

        def close(self) -> None:
            closed.append(True)

    server = InProcessServer(Engine())
    with RawClient(server.connect()) as c:
        c.negotiate()
        assert c.cmd("quit") == {"return": {}}
        assert c.line() == b""
    server.close()
    assert closed == [True]


def test_a_client_that_never_reads_is_held_back_or_dropped(tmp_path: Path) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    with InProcessServer(max_output_buffer=64 << 10) as server:
        hog = server.connect()
        hog.sendall(b'{"execute":"qmp_capabilities"}')
        hog.sendall(json.dumps({"execute": "blockdev-add", "arguments": {
            "driver": "qcow2", "node-name": "d", "file": {"driver": "file",
                                                            "filename": str(img)}}}).encode())
        # commands whose replies it never reads: the server stops reading from it
        # (back-pressure) instead of queueing megabytes of replies
        hog.setblocking(False)
        with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
            for _ in range(4000):
                hog.sendall(b'{"execute":"query-named-block-nodes"}')
        polite = RawClient(server.connect()).negotiate()
        assert len(polite.cmd("query-named-block-nodes")["return"]) == 2
        # events are pushed regardless; past the limit the hog is disconnected
        blob = "x" * 10_000
        for i in range(300):  # the polite client keeps up; the hog does not read
            server.engine.emit("BLOCKGRAPH_TEST", {"n": i, "blob": blob})
            assert polite.message()["data"]["n"] == i
        assert "return" in polite.cmd("query-version")
        hog.setblocking(True)
        hog.settimeout(10)
        received = 0
        with contextlib.suppress(OSError):
            while chunk := hog.recv(1 << 20):
                received += len(chunk)
        hog.close()
        assert received < 300 * 10_000  # cut off: the events did not all pile up for it
        polite.close()


def test_a_client_that_pipelines_many_commands_gets_every_reply(tmp_path: Path) -> None:
    """Thousands of commands in one burst overflow the output limit many times over;
    the server reads no further until the replies drain, and drops nobody."""
    img = create(tmp_path / "disk.qcow2", "1M")
    count = 3000
    with InProcessServer(max_output_buffer=64 << 10) as server:
        client = RawClient(server.connect()).negotiate()
        client.cmd("blockdev-add", {"driver": "qcow2", "node-name": "d",
                                    "file": {"driver": "file", "filename": str(img)}})
        burst = b"".join(json.dumps({"execute": "query-named-block-nodes",
                                     "id": i}).encode() for i in range(count))
        sender = threading.Thread(target=client.sock.sendall, args=(burst,))
        sender.start()
        # the server has answered until this client's socket is full, and waits for it
        wait_until(lambda: server.held_back() == 1, "the server holding the client back",
                   timeout=30)
        ids = [client.message()["id"] for _ in range(count)]
        sender.join(10)
        assert ids == list(range(count))
        assert len(client.cmd("query-named-block-nodes")["return"]) == 2

"""Session test support: a qemu-storage-daemon with two monitors — one for the session
under test, one for the test's own blocking client (a QSD monitor serves one client at a
time, and qemu.qmp's legacy client cannot run inside the test's event loop).

Fixtures ``peer`` and ``session`` are registered by ``tests/session/conftest.py`` and
``tests/planner/conftest.py``."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.server.inprocess import InProcessServer
from gui.session import Endpoint, Session, socket_endpoint
from tests.support.qemu import (
    QSD,
    connect_monitor,
    start_until_greeted,
    wait_until_initialized,
)


class RawMonitor:
    """A blocking QMP client on a plain socket: usable inside a running event loop
    (qemu.qmp's legacy client is not). Events are skipped."""

    def __init__(self, target: str | socket.socket) -> None:
        if isinstance(target, socket.socket):
            self.sock = target
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(target)
        self.file = self.sock.makefile("rwb")
        self._read()                                   # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("monitor closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command: str, arguments: dict | None = None) -> dict:
        msg: dict = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


class Peer:
    """A restartable qemu-storage-daemon: the session's socket path survives restarts."""

    kind = "qemu-storage-daemon"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.session_socket = str(workdir / "session.sock")
        self.aux_socket = str(workdir / "aux.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.aux: RawMonitor | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.session_socket}"

    @property
    def endpoint(self) -> Endpoint | str:
        return self.address

    def start(self) -> None:
        self.aux = RawMonitor(start_until_greeted(self._launch, self.kill))

    def _launch(self) -> socket.socket:
        """Start the daemon; return a socket connected to the test's own monitor."""
        pidfile = os.path.join(os.path.dirname(self.aux_socket), "qsd.pid")
        for path in (self.session_socket, self.aux_socket, pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.proc = subprocess.Popen(
            [QSD,
             "--chardev", f"socket,path={self.aux_socket},server=on,wait=off,id=a0",
             "--monitor", "chardev=a0",
             "--chardev", f"socket,path={self.session_socket},server=on,wait=off,id=s0",
             "--monitor", "chardev=s0", "--pidfile", pidfile],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        wait_until_initialized(pidfile, self.proc, deadline)
        return connect_monitor(self.aux_socket, self.proc, deadline)

    def kill(self) -> None:
        assert self.proc is not None
        if self.aux is not None:
            self.aux.close()
            self.aux = None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.aux is not None:
            self.aux.close()
            self.aux = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def execute(self, command: str, arguments: dict | None = None) -> dict:
        assert self.aux is not None
        reply = self.aux.execute(command, arguments)
        reply.pop("id", None)
        return reply

    def ok(self, command: str, arguments: dict | None = None) -> object:
        reply = self.execute(command, arguments)
        assert "return" in reply, reply
        return reply["return"]


class EnginePeer(Peer):
    """The bundled engine behind its in-process QMP server (socket pairs, same wire)."""

    kind = "bundled engine"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.server: InProcessServer | None = None

    @property
    def endpoint(self) -> Endpoint | str:
        assert self.server is not None
        return socket_endpoint("bundled engine", self.server.connect)

    def start(self) -> None:
        self.server = InProcessServer()
        self.aux = RawMonitor(self.server.connect())

    def kill(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self.aux is not None:
            self.aux.close()
            self.aux = None
        if self.server is not None:
            self.server.close()
            self.server = None


#: Peers the differential session/planner tests run against.
PEER_KINDS = ["qsd", "engine"]


@contextlib.contextmanager
def started_peer(kind: str, tmp_path: Path) -> Iterator[Peer]:
    """A started peer of ``kind`` ("qsd" or "engine") in ``tmp_path/peer``, stopped after."""
    workdir = tmp_path / "peer"
    workdir.mkdir()
    p = EnginePeer(workdir) if kind == "engine" else Peer(workdir)
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(params=PEER_KINDS)
def any_peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peer]:
    with started_peer(request.param, tmp_path) as p:
        yield p


@pytest.fixture
async def any_session(any_peer: Peer) -> AsyncIterator[Session]:
    s = Session(any_peer.endpoint, poll_interval=0.2, reconnect_delays=(0.05, 0.2))
    await s.connect()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    with started_peer("qsd", tmp_path) as p:
        yield p


@pytest.fixture
async def session(peer: Peer) -> AsyncIterator[Session]:
    s = Session(peer.address, poll_interval=0.2, reconnect_delays=(0.05, 0.2))
    await s.connect()
    try:
        yield s
    finally:
        await s.close()

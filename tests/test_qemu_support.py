"""The real-QEMU test support works on this machine (CI installs QEMU; never skipped)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from tests.server.support import RawClient, ServeProcess
from tests.support import qemu


def test_qemu_img_and_daemon_are_usable(tmp_path: Path, qsd: qemu.QemuStorageDaemon) -> None:
    img = qemu.create(tmp_path / "a.qcow2", "1M")
    qemu.check(img)
    reply = qsd.execute("blockdev-add", {"driver": "file", "filename": str(img),
                                         "node-name": "f"})
    assert reply == {"return": {}}
    nodes = qsd.execute("query-named-block-nodes", {"flat": True})["return"]
    assert [n["node-name"] for n in nodes] == ["f"]
    assert qsd.execute("nope")["error"]["class"] == "CommandNotFound"


def test_drain_events_keeps_events_that_arrive_together(tmp_path: Path) -> None:
    """A job's last events reach the client in one read; every one of them is returned.

    A second (plain socket) client waits until the job has concluded, so the first
    one's events all sit unread in its socket when it collects them.
    """
    with ServeProcess(tmp_path) as serve, RawClient(serve.socket_path, 60) as watcher:
        watcher.negotiate()
        client = QEMUMonitorProtocol(serve.socket_path)
        client.connect(negotiate=True)
        try:
            reply = client.cmd_raw("blockdev-create", {"job-id": "j", "options": {
                "driver": "file", "filename": str(tmp_path / "new.raw"), "size": 1 << 20}})
            assert reply["return"] == {}
            seen = [watcher.message()]
            while seen[-1]["data"] != {"id": "j", "status": "concluded"}:
                seen.append(watcher.message())
            got: list[dict[str, Any]] = []
            deadline = time.monotonic() + 10
            while len(got) < len(seen) and time.monotonic() < deadline:
                got += qemu.drain_events(client)
            assert [(e["event"], e["data"]) for e in got] == \
                [(e["event"], e["data"]) for e in seen]
        finally:
            client.close()


SILENT_DAEMON = """
import socket, sys, time
chardev = sys.argv[sys.argv.index("--chardev") + 1].split(",")
path = next(p[len("path="):] for p in chardev if p.startswith("path="))
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(1)
with open(path + ".starts", "a") as log:
    log.write("start\\n")
with open(sys.argv[sys.argv.index("--pidfile") + 1], "w") as pidfile:
    pidfile.write("0\\n")          # initialized, as the real one says
time.sleep(60)   # accepts nothing, greets nobody
"""


def test_a_daemon_that_never_greets_is_started_again_then_reported(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The QMP library waits for the greeting without a limit: the support code waits
    a bounded time, starts the daemon again, and finally says what happened."""
    import pytest

    fake = tmp_path / "silent-daemon"
    fake.write_text(f"#!{sys.executable}\n{SILENT_DAEMON}")
    fake.chmod(0o755)
    monkeypatch.setattr(qemu, "QSD", str(fake))
    daemon = qemu.QemuStorageDaemon(tmp_path)
    monkeypatch.setattr(daemon, "GREETING_SECONDS", 0.5)
    with pytest.warns(UserWarning, match="no QMP greeting") as warned, \
            pytest.raises(RuntimeError, match=r"no QMP greeting in 0\.5 s, 3 times"):
        daemon.start()
    assert len(warned) == 2          # the third failure is the error
    assert (tmp_path / "qsd.sock.starts").read_text() == "start\n" * 3
    assert daemon.proc is None     # the last one was killed, not left running


def test_a_daemon_whose_negotiation_fails_is_not_left_running(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A greeting followed by a failed ``qmp_capabilities`` (the double greeting seen in
    CI did that) stops the daemon that was started: none is left for the session."""
    import pytest

    def refuse(self: QEMUMonitorProtocol, negotiate: bool = True) -> None:
        raise ConnectionError("negotiation refused")

    monkeypatch.setattr(QEMUMonitorProtocol, "connect", refuse)
    daemon = qemu.QemuStorageDaemon(tmp_path)
    started: list[Any] = []
    launch = daemon._launch

    def remember() -> Any:
        sock = launch()
        started.append(daemon.proc)
        return sock

    monkeypatch.setattr(daemon, "_launch", remember)
    with pytest.raises(ConnectionError, match="negotiation refused"):
        daemon.start()
    assert len(started) == 1
    assert started[0].poll() is not None      # the daemon has exited
    assert daemon.proc is None


def test_negotiation_skips_a_second_greeting() -> None:
    """A monitor that greets twice (QEMU 7.2 does, now and then, to a client that connects
    while it starts) still ends in command mode, with nothing left unread for qemu.qmp."""
    import json
    import socket
    import threading

    ours, monitor = socket.socketpair()
    greeting = b'{"QMP": {"version": {}, "capabilities": ["oob"]}}\r\n'

    def serve() -> None:
        monitor.sendall(greeting + greeting)
        request = monitor.recv(4096)
        assert json.loads(request)["execute"] == "qmp_capabilities"
        monitor.sendall(b'{"return": {}, "id": "negotiate"}\r\n')

    server = threading.Thread(target=serve)
    server.start()
    qemu.negotiate(ours, seconds=10)
    server.join()
    monitor.sendall(b'{"return": {"qemu": {}}, "id": "next"}\r\n')
    assert json.loads(ours.recv(4096))["id"] == "next"     # the reply that follows, whole
    ours.close()
    monitor.close()

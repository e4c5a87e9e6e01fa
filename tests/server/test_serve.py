"""``blockgraph serve`` as a process: wire format, negotiation, clients, events, exit."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.server.cli import parse_tcp_address
from tests.server.support import REPO, RawClient, ServeProcess
from tests.support.qemu import check, create, qemu_io

pytestmark = pytest.mark.qemu


def _qcow2(path: Path, **opts: object) -> dict[str, object]:
    return {"driver": "qcow2", "file": {"driver": "file", "filename": str(path)}, **opts}


def _open_files(pid: int) -> list[str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    names = []
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            names.append(os.readlink(fd))
    return names


def test_greeting_negotiation_and_id_echo_bytes(serve: ServeProcess) -> None:
    with RawClient(serve.socket_path) as c:
        assert re.fullmatch(
            rb'\{"QMP": \{"version": \{"qemu": \{"micro": \d+, "minor": \d+, "major": \d+\}, '
            rb'"package": "[^"]*"\}, "capabilities": \["oob"\]\}\}\r\n', c.greeting)
        c.send(b'{"execute":"query-version","id":1}')
        assert c.line() == (b'{"id": 1, "error": {"class": "CommandNotFound", "desc": '
                            b'"Expecting capabilities negotiation with \'qmp_capabilities\'"}}\r\n')
        c.send(b'{"execute":"qmp_capabilities"}')
        assert c.line() == b'{"return": {}}\r\n'
        c.send(b'{"execute":"qmp_capabilities","id":"x"}')
        assert c.line() == (b'{"id": "x", "error": {"class": "CommandNotFound", "desc": '
                            b'"Capabilities negotiation is already complete, command ignored"}}'
                            b'\r\n')
        version = json.loads(c.greeting)["QMP"]["version"]
        c.send(b'{"execute":"query-version","id":{"a":[1,"b"]}}')
        reply = c.line()
        assert reply.endswith(b', "id": {"a": [1, "b"]}}\r\n')
        assert json.loads(reply)["return"] == version
        c.send(b'{"execute":"no-such-command"}')
        assert c.line() == (b'{"error": {"class": "CommandNotFound", "desc": '
                            b'"The command no-such-command has not been found"}}\r\n')


def test_bad_input_gets_qemu_answers_and_the_connection_lives(serve: ServeProcess) -> None:
    with RawClient(serve.socket_path) as c:
        c.negotiate()
        for data, desc in [
            (b"garbage\n", "JSON parse error, invalid keyword 'garbage'"),
            (b"[1,2]", "QMP input must be a JSON object"),
            (b'{"foo":1}', "QMP input member 'foo' is unexpected"),
            (b'{"execute":1}', "QMP input member 'execute' must be a string"),
            (b'{"execute":"query-version","arguments":[]}',
             "QMP input member 'arguments' must be an object"),
            (b'{"arguments":{}}', "QMP input lacks member 'execute'"),
            (b'{"exec-oob":"query-version"}', "QMP input member 'exec-oob' is unexpected"),
            (b'{"execute":"query-named-block-nodes","arguments":{"flat":"yes"}}',
             "Invalid parameter type for 'flat', expected: boolean"),
        ]:
            c.send(data)
            assert c.message() == {"error": {"class": "GenericError", "desc": desc}}, data
        assert "return" in c.cmd("query-named-block-nodes")


def test_several_clients_and_events_after_negotiation_only(serve: ServeProcess,
                                                          tmp_path: Path) -> None:
    a = RawClient(serve.socket_path).negotiate()
    b = RawClient(serve.socket_path).negotiate()
    late = RawClient(serve.socket_path)  # connected, not negotiated
    try:
        a.send(json.dumps({"execute": "blockdev-create", "id": 7, "arguments": {
            "job-id": "c1", "options": {"driver": "file", "filename": str(tmp_path / "new.img"),
                                        "size": 0}}}).encode())
        seen_a = []
        while True:
            msg = a.message()
            if "event" not in msg:
                assert msg == {"return": {}, "id": 7}
                break
            seen_a.append(msg)
        statuses = ["created", "running", "waiting", "pending", "concluded"]
        while len(seen_a) < len(statuses):
            seen_a.append(a.message())
        # events reach every negotiated client, in order, identical
        seen_b = [b.message() for _ in statuses]
        assert seen_b == seen_a
        assert [e["data"]["status"] for e in seen_a] == statuses
        assert all(e["event"] == "JOB_STATUS_CHANGE" and e["data"]["id"] == "c1"
                   and set(e["timestamp"]) == {"seconds", "microseconds"} for e in seen_a)
        # the unnegotiated client got nothing: its next line answers its own command
        late.send(b'{"execute":"qmp_capabilities"}')
        assert late.message() == {"return": {}}
        b.send(b'{"execute":"job-dismiss","arguments":{"id":"c1"}}')
        for client in (a, b, late):
            assert client.message()["data"] == {"status": "null", "id": "c1"}
        assert b.message() == {"return": {}}
    finally:
        for c in (a, b, late):
            c.close()


def test_a_job_outlives_the_client_that_started_it(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", "4M")
    qemu_io(base, "write -P 0x5a 0 4M")
    top = create(tmp_path / "top.qcow2", "4M", backing=str(base))
    with ServeProcess(tmp_path) as srv:
        watcher = RawClient(srv.socket_path).negotiate()
        with RawClient(srv.socket_path) as starter:
            starter.negotiate()
            assert starter.cmd("blockdev-add", _qcow2(top, **{"node-name": "top"})) == {
                "return": {}}
            starter.send(json.dumps({"execute": "block-stream", "arguments": {
                "job-id": "s1", "device": "top", "speed": 8 << 20}}).encode())
        # the starter hung up right after sending; the job runs on and completes
        while True:
            msg = watcher.message()
            if msg.get("event") == "BLOCK_JOB_COMPLETED":
                break
        assert msg["data"]["device"] == "s1" and "error" not in msg["data"]
        assert msg["data"]["offset"] == msg["data"]["len"] == 4 << 20
        nodes = watcher.cmd("query-named-block-nodes", {"flat": True})["return"]
        assert next(n for n in nodes if n["node-name"] == "top").get("backing_file") is None
        watcher.close()
    check(top)
    assert qemu_io(top, "read -P 0x5a 0 4M").returncode == 0


def test_quit_closes_images_and_removes_the_socket(tmp_path: Path) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    with ServeProcess(tmp_path) as srv:
        with RawClient(srv.socket_path) as c:
            c.negotiate()
            assert c.cmd("blockdev-add", _qcow2(img, **{"node-name": "d"})) == {"return": {}}
            assert str(img) in _open_files(srv.pid)
            c.send(b'{"execute":"quit","id":"q"}')
            assert c.line() == b'{"return": {}, "id": "q"}\r\n'
            assert c.line() == b""  # then the server hangs up
        assert srv.wait() == 0
    assert not os.path.exists(srv.socket_path)
    check(img)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path: Path, sig: int) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    with ServeProcess(tmp_path) as srv:
        c = RawClient(srv.socket_path).negotiate()
        assert c.cmd("blockdev-add", _qcow2(img, **{"node-name": "d"})) == {"return": {}}
        srv.signal(sig)
        assert srv.wait() == 0
        assert c.line() == b""
        c.close()
    assert not os.path.exists(srv.socket_path)
    check(img)


def test_blockdev_reopen_with_empty_list_does_not_kill_the_server(serve: ServeProcess) -> None:
    # qemu-storage-daemon 7.2 aborts on this input; the engine answers and lives on
    with RawClient(serve.socket_path) as c:
        c.negotiate()
        reply = c.cmd("blockdev-reopen", {"options": []})
        assert reply == {"return": {}} or reply["error"]["class"] == "GenericError"
        assert c.cmd("query-named-block-nodes") == {"return": []}
    assert serve.proc is not None and serve.proc.poll() is None


def test_socket_is_owner_only(serve: ServeProcess) -> None:
    mode = os.stat(serve.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_socket_never_appears_with_wider_permissions(tmp_path: Path) -> None:
    """Even under a permissive umask the socket is created private (not chmod-ed later)."""
    code = ("import os, asyncio\n"
            "os.umask(0)\n"
            "from engine.server.server import bind_private_unix_socket\n"
            f"s = bind_private_unix_socket({str(tmp_path / 's.sock')!r})\n"
            f"print(oct(os.stat({str(tmp_path / 's.sock')!r}).st_mode & 0o777))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sock"]  # no leftovers


def test_refuses_a_live_socket_and_replaces_a_stale_one(tmp_path: Path) -> None:
    with ServeProcess(tmp_path) as first:
        proc = subprocess.run([sys.executable, "-m", "gui.cli", "serve", "--socket",
                               first.socket_path], cwd=REPO, capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 1
        assert "in use by another server" in proc.stderr
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "bg.sock"))
    stale.close()  # leaves a socket file nobody listens on
    with ServeProcess(tmp_path) as second, RawClient(second.socket_path) as c:
        c.negotiate()


def test_tcp_address_parsing() -> None:
    assert parse_tcp_address(":4444") == ("127.0.0.1", 4444)
    assert parse_tcp_address("localhost:0") == ("localhost", 0)
    assert parse_tcp_address("0.0.0.0:5") == ("0.0.0.0", 5)
    assert parse_tcp_address("[::1]:7") == ("::1", 7)


def _listening_tcp(pid_port: int) -> list[str]:
    """Local addresses (hex 'ADDR:PORT') of IPv4 listeners on ``pid_port``."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    found = []
    for row in rows:
        fields = row.split()
        local, state = fields[1], fields[3]
        if state == "0A" and int(local.split(":")[1], 16) == pid_port:
            found.append(local)
    return found


def test_tcp_binds_loopback_by_default(tmp_path: Path) -> None:
    with ServeProcess(tmp_path, "--tcp", ":0") as srv:
        assert srv.proc is not None and srv.proc.stderr is not None
        port = None
        for _ in range(5):
            m = re.search(r"listening on tcp:([\d.]+):(\d+)", srv.proc.stderr.readline())
            if m:
                assert m.group(1) == "127.0.0.1"
                port = int(m.group(2))
                break
        assert port is not None
        assert _listening_tcp(port) == [f"0100007F:{port:04X}"]
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with RawClient(sock) as c:
            c.negotiate()
            assert "return" in c.cmd("query-version")


def test_root_confines_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = create(tmp_path / "outside.qcow2", "1M")
    inside = create(root / "in.qcow2", "1M")
    (root / "link.qcow2").symlink_to(outside)
    with ServeProcess(tmp_path, "--root", str(root)) as srv, RawClient(srv.socket_path) as c:
        c.negotiate()
        for i, name in enumerate([str(root / "sub" / ".." / ".." / "outside.qcow2"),
                                  str(root / "link.qcow2"), str(outside)]):
            reply = c.cmd("blockdev-add", _qcow2(Path(name), **{"node-name": f"n{i}"}))
            assert reply["error"]["class"] == "GenericError", name
            assert "Permission denied" in reply["error"]["desc"], reply
        assert c.cmd("blockdev-add", _qcow2(inside, **{"node-name": "ok"})) == {"return": {}}
        names = [n["node-name"] for n in c.cmd("query-named-block-nodes")["return"]]
        assert "ok" in names and not any(n.startswith("n") for n in names)
        # files the engine would create are confined too
        for target in (tmp_path / "snap.qcow2", root / ".." / "snap2.qcow2"):
            reply = c.cmd("blockdev-snapshot-sync", {"node-name": "ok", "snapshot-file":
                                                     str(target), "snapshot-node-name": "s"})
            assert "Permission denied" in reply["error"]["desc"]
        assert c.cmd("blockdev-create", {"job-id": "c1", "options": {
            "driver": "file", "filename": str(tmp_path / "new.img"), "size": 0}}) == {
            "return": {}}
        while True:
            jobs = c.cmd("query-jobs")["return"]
            if jobs and jobs[0]["status"] == "concluded":
                break
            time.sleep(0.02)
        assert "Permission denied" in jobs[0]["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.qcow2", "root"]


def test_cli_help_version_and_usage_errors() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gui.cli", "serve", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=30)

    helped = run("--help")
    assert helped.returncode == 0 and "--socket" in helped.stdout and "--root" in helped.stdout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("blockgraph serve ")
    nothing = run()
    assert nothing.returncode == 2 and "nothing to listen on" in nothing.stderr
    bad_tcp = run("--tcp", "nohost")
    assert bad_tcp.returncode == 2 and "HOST:PORT" in bad_tcp.stderr


def test_a_command_completes_when_its_client_hangs_up_at_once(serve: ServeProcess,
                                                              tmp_path: Path) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    with RawClient(serve.socket_path) as c:
        c.negotiate()
        c.send(json.dumps({"execute": "blockdev-add",
                           "arguments": _qcow2(img, **{"node-name": "d"})}).encode())
    with RawClient(serve.socket_path) as other:
        other.negotiate()
        deadline = time.monotonic() + 30   # generous: the machine may be busy
        while True:
            nodes = other.cmd("query-named-block-nodes", {"flat": True})["return"]
            if nodes or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert [n["node-name"] for n in nodes if n["drv"] == "qcow2"] == ["d"]


def test_a_client_dropping_mid_message_or_sending_floods_harms_no_one(
        serve: ServeProcess) -> None:
    with RawClient(serve.socket_path) as steady:
        steady.negotiate()
        fds = serve.settled_fds()
        with RawClient(serve.socket_path) as rude:
            rude.negotiate()
            rude.send(b"[" * 1025)
            assert rude.message() == {"error": {"class": "GenericError",
                                                "desc": "JSON nesting depth limit exceeded"}}
            assert "return" in steady.cmd("query-version")
            rude.send(b'{"execute":"query-version","arguments":{"a":"' + b"x" * (1 << 20))
            assert "return" in steady.cmd("query-named-block-nodes")
        # the rude client is gone mid-message; the server cleans up after it
        assert serve.settled_fds(at_most=fds) == fds
        assert "return" in steady.cmd("query-version")


def test_the_settled_fd_count_waits_for_closes_but_still_shows_an_open_connection(
        serve: ServeProcess) -> None:
    fds = serve.settled_fds()
    with RawClient(serve.socket_path) as held:
        held.negotiate()
        # waiting for the count to drop to ``fds`` gives up and shows the open socket
        assert serve.settled_fds(at_most=fds, timeout=2) == fds + 1
    assert serve.settled_fds(at_most=fds) == fds

"""``blockgraph serve`` hardening: socket permissions, loopback TCP, input limits, no shell-outs.

- The unix socket is owner-only, and another user really cannot connect (a child
  process drops to ``nobody`` and tries; this needs root, which the test machines
  and CI have — without root only the mode is checked, and the test says so).
- ``--tcp :PORT`` listens on 127.0.0.1 only; other addresses must be named.
- Input limits: a message nested deeper than the limit or a token larger than the
  limit is answered with an error, and the server (and other clients) carry on.
- No code under ``engine/`` starts a process or a shell (so no command can run one
  with user input): checked on the source's syntax tree.
"""

from __future__ import annotations

import ast
import errno
import os
import re
import socket
import stat
from pathlib import Path

import pytest

from engine.server.inprocess import InProcessServer
from engine.server.jsonstream import MAX_NESTING
from tests.server.support import REPO, RawClient, ServeProcess

NOBODY = 65534


def _connect_as(uid: int, path: str) -> int:
    """errno of connecting to ``path`` from a child running as ``uid`` (0: it worked)."""
    pid = os.fork()
    if pid == 0:   # child: never returns into pytest
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:
            code = 254
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_unix_socket_is_owner_only(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)    # the directory would let others reach the socket
    with ServeProcess(tmp_path) as srv:
        mode = os.stat(srv.socket_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert mode & 0o077 == 0, oct(mode)
        assert os.stat(srv.socket_path).st_uid == os.getuid()
        with RawClient(srv.socket_path) as c:       # the owner can connect
            c.negotiate()
        if os.getuid() == 0:
            assert _connect_as(NOBODY, srv.socket_path) == errno.EACCES
        else:
            pytest.fail("run as root to check that another user is refused") \
                if os.environ.get("CI") else None


def test_tcp_defaults_to_loopback_and_other_addresses_must_be_named(tmp_path: Path) -> None:
    with ServeProcess(tmp_path, "--tcp", ":0") as srv:
        assert srv.proc is not None and srv.proc.stderr is not None
        line = ""
        while "tcp:" not in line:
            line = srv.proc.stderr.readline()
            assert line, "no TCP announcement"
        host, port = re.search(r"listening on tcp:([\d.]+):(\d+)", line).groups()  # type: ignore[union-attr]
        assert host == "127.0.0.1"
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        listening = [r.split()[1] for r in rows
                     if r.split()[3] == "0A" and int(r.split()[1].split(":")[1], 16) == int(port)]
        assert listening == [f"0100007F:{int(port):04X}"]   # 127.0.0.1 only, not 0.0.0.0


@pytest.fixture
def server() -> InProcessServer:
    with InProcessServer() as srv:
        yield srv


def test_nesting_beyond_the_limit_is_refused_and_the_server_carries_on(
        server: InProcessServer) -> None:
    observer = RawClient(server.connect()).negotiate()
    with RawClient(server.connect()) as c:
        c.negotiate()
        depth = MAX_NESTING + 10
        c.send(b'{"execute": "query-version", "arguments": {"a": ' + b"[" * depth
               + b"]" * depth + b"}}")
        assert _replies_until_ok(c)[0]["error"]["desc"] == "JSON nesting depth limit exceeded"
    assert "return" in observer.cmd("query-version")
    observer.close()


def test_oversized_token_is_refused_and_the_server_carries_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU's limit (64 MiB) is the default; the test lowers it to 4 MiB to stay quick
    — the same code path refuses the token either way.

    QEMU's lexer starts afresh right after the byte that crossed the limit, so the rest
    of the string is read as other tokens and its closing quote opens a new string; the
    client gets its parser back into a known state as QMP's specification says, with a
    control character (section 2.6, "Forcing the JSON parser into known-good state")."""
    import functools

    from engine.server import inprocess
    from engine.server.jsonstream import MAX_TOKEN_SIZE
    from engine.server.server import QMPServer

    assert MAX_TOKEN_SIZE == 64 << 20
    limit = 4 << 20
    monkeypatch.setattr(inprocess, "QMPServer", functools.partial(QMPServer,
                                                                  max_token_size=limit))
    with InProcessServer() as srv:
        observer = RawClient(srv.connect()).negotiate()
        with RawClient(srv.connect(), timeout=30) as c:
            c.negotiate()
            chunk = b"a" * (256 << 10)
            c.send(b'{"execute": "query-version", "arguments": {"a": "')
            for _ in range(limit // len(chunk) + 2):
                c.send(chunk)
            c.send(b'"}}\x01')
            replies = _replies_until_ok(c)
            assert replies[0]["error"]["desc"] == "JSON token size limit exceeded", replies
            descs = [r["error"]["desc"] for r in replies[1:]]
            assert descs[0].startswith("JSON parse error, invalid keyword 'aaa"), descs
            assert descs[1:] == ["JSON parse error, stray '\"}}\x01'"], descs
        assert "return" in observer.cmd("query-version")
        observer.close()


def _replies_until_ok(c: RawClient) -> list[dict]:  # type: ignore[type-arg]
    """Replies to what was sent (errors for the rest of a refused message too), then the
    answer to a tagged query-version: the connection still works."""
    c.send(b'{"execute": "query-version", "id": "alive"}')
    out = []
    while True:
        msg = c.reply()
        if msg.get("id") == "alive":
            assert "return" in msg, msg
            return out
        out.append(msg)


def test_a_string_split_anywhere_across_reads_parses_the_same() -> None:
    """The incremental string scan (resumed per read) gives the same tokens as one read."""
    from engine.server.jsonstream import JSONStream

    msg = (b'{"execute": "x", "arguments": {"s": "a\\\\b\\"c\\u00e9\\ud83d\\ude00", '
           b"'q': 'it\\'s'}}")
    whole = JSONStream().feed(msg)
    for cut in range(1, len(msg)):
        for step in (1, 3):
            stream = JSONStream()
            got = stream.feed(msg[:cut])
            for i in range(cut, len(msg), step):
                got += stream.feed(msg[i:i + step])
            assert got == whole, (cut, step)
    assert whole[0]["arguments"]["s"] == 'a\\b"c\u00e9\U0001f600'


FORBIDDEN_CALLS = {("os", "system"), ("os", "popen"), ("os", "spawnl"), ("os", "spawnv"),
                   ("os", "execv"), ("os", "execvp"), ("os", "execl"), ("os", "execlp"),
                   ("os", "posix_spawn"), ("os", "posix_spawnp"), ("pty", "spawn")}


def test_engine_never_starts_a_process() -> None:
    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                mod = node.module if isinstance(node, ast.ImportFrom) else None
                if "subprocess" in names or mod == "subprocess" or "pty" in names:
                    offenders.append(f"{where} imports subprocess/pty")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    (node.value.id, node.attr) in FORBIDDEN_CALLS:
                offenders.append(f"{where} uses {node.value.id}.{node.attr}")
            if isinstance(node, ast.Name) and node.id in ("popen", "system", "check_output"):
                offenders.append(f"{where} uses {node.id}")
    assert offenders == []


def test_the_process_check_would_catch_a_shell_out(tmp_path: Path) -> None:
    """The syntax-tree check above is not vacuous: it flags the usual spellings."""
    sample = "import subprocess\nimport os\nos.system('x')\nos.popen('y')\n"
    tree = ast.parse(sample)
    hits = [n for n in ast.walk(tree)
            if (isinstance(n, ast.Import) and n.names[0].name == "subprocess")
            or (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                and (n.value.id, n.attr) in FORBIDDEN_CALLS)]
    assert len(hits) == 3

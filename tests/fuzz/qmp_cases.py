"""The QMP server under random and mutated input, and what it must keep doing.

A case is a list of *chunks* sent by one hostile client over a real connection
(the in-process server's socket pair: the same bytes and the same server code as
``blockgraph serve``). A chunk is either a JSON message — usually a real command
with arguments mutated from a valid template (a leaf replaced by a hostile value,
a member dropped or added) — or raw bytes (a valid message cut short, garbage,
deep nesting, invalid UTF-8). The engine is confined to a scratch ``--root`` with
a few small images, so path-shaped values can only hit files made for the case.

:func:`check_case` asserts, for every case:

- every message the server writes is valid QMP: the greeting, then replies
  (``return`` or ``error`` with string ``class`` and ``desc``, optional ``id``) and
  events (``event``, ``data``, ``timestamp``) — one line each;
- no reply is an "Internal error" (an exception the engine did not turn into
  QEMU's answer is a bug, even though the server survives it);
- the server survives: a well-behaved second client, connected all along, gets
  correct answers after every chunk, and a new client can still connect and
  negotiate after the hostile one is gone.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from engine.formats import create_qcow2, create_raw
from engine.qmp import Engine
from engine.server.inprocess import InProcessServer

#: how long a reply may take before the server counts as hung
REPLY_TIMEOUT = 10.0


class QMPBroken(AssertionError):
    """The server broke one of the properties above."""


def templates(root: Path) -> list[dict[str, Any]]:
    """Valid commands over the case's images (what mutations start from)."""
    r = str(root)
    return [
        {"execute": "blockdev-add", "arguments": {
            "driver": "qcow2", "node-name": "top",
            "file": {"driver": "file", "filename": f"{r}/top.qcow2"}}},
        {"execute": "blockdev-add", "arguments": {
            "driver": "qcow2", "node-name": "top2", "backing": None,
            "file": {"driver": "file", "filename": f"{r}/top.qcow2"}, "read-only": True}},
        {"execute": "blockdev-add", "arguments": {
            "driver": "raw", "node-name": "base",
            "file": {"driver": "file", "filename": f"{r}/base.raw"}}},
        {"execute": "blockdev-add", "arguments": {
            "driver": "qcow2", "node-name": "jtop",
            "file": {"driver": "file", "filename": f"{r}/top.qcow2"},
            "backing": {"driver": "raw",
                        "file": {"driver": "file", "filename": f"{r}/base.raw"}}}},
        {"execute": "blockdev-add", "arguments": {
            "driver": "qcow2", "node-name": "j2",
            "file": {"driver": "file", "filename": f"json:{{\"driver\": \"file\", "
                                                  f"\"filename\": \"{r}/top.qcow2\"}}"}}},
        {"execute": "blockdev-reopen", "arguments": {"options": [{
            "driver": "qcow2", "node-name": "top", "file": "top-file", "backing": None}]}},
        {"execute": "blockdev-snapshot-sync", "arguments": {
            "node-name": "top", "snapshot-file": f"{r}/snap.qcow2",
            "snapshot-node-name": "snap", "format": "qcow2"}},
        {"execute": "blockdev-create", "arguments": {"job-id": "create", "options": {
            "driver": "file", "filename": f"{r}/new.qcow2", "size": 1 << 20}}},
        {"execute": "blockdev-create", "arguments": {"job-id": "create2", "options": {
            "driver": "qcow2", "file": "top-file", "size": 1 << 20,
            "backing-file": "base.raw", "backing-fmt": "raw"}}},
        {"execute": "block-stream", "arguments": {"job-id": "s", "device": "top"}},
        {"execute": "block-commit", "arguments": {"job-id": "c", "device": "top",
                                                  "backing-file": "base.raw"}},
        {"execute": "job-cancel", "arguments": {"id": "s"}},
        {"execute": "job-dismiss", "arguments": {"id": "create"}},
        {"execute": "block-job-set-speed", "arguments": {"device": "s", "speed": 1}},
        {"execute": "query-named-block-nodes", "arguments": {"flat": True}},
        {"execute": "x-debug-query-block-graph"},
        {"execute": "query-jobs", "id": 1},
        {"execute": "query-block-jobs", "id": "x"},
        {"execute": "query-commands"},
        {"execute": "transaction", "arguments": {"actions": [
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "top", "snapshot-file": f"{r}/t.qcow2",
                "snapshot-node-name": "t"}}]}},
        {"execute": "blockdev-del", "arguments": {"node-name": "top"}},
        {"execute": "qmp_capabilities"},
    ]


HOSTILE_VALUES: list[Any] = [
    None, True, 0, -1, 1 << 63, -(1 << 63), (1 << 64) - 1, 1e308, 0.5, "", "a" * 5000,
    "..", "../../etc/passwd", "/etc/passwd", "/", "top\x00x", "\udcff", "json:{}",
    'json:{"driver": "file", "filename": "/etc/passwd"}', "#block123", "top", "base",
    [], [None], {}, {"driver": "file"}, {"": 1}, [[[[[[[[]]]]]]]],
]


def make_files(root: Path) -> None:
    create_raw(root / "base.raw", 1 << 20)
    create_qcow2(root / "top.qcow2", 1 << 20, backing_file="base.raw", backing_format="raw",
                 cluster_size=65536)


def mutate(message: dict[str, Any], choices: list[int]) -> dict[str, Any]:
    """Apply mutations chosen by ``choices`` (ints) to a deep copy of ``message``."""
    msg = copy.deepcopy(message)
    it = iter(choices)
    for c in it:
        leaves = _paths(msg)
        if not leaves:
            break
        path = leaves[c % len(leaves)]
        op = next(it, 0) % 4
        parent = msg
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op in (0, 1):
            parent[key] = copy.deepcopy(HOSTILE_VALUES[next(it, 0) % len(HOSTILE_VALUES)])
        elif op == 2 and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[f"x{next(it, 0)}"] = HOSTILE_VALUES[next(it, 0) % len(HOSTILE_VALUES)]
    return msg


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def raw_chunks(kind: int, n: int, message: bytes) -> bytes:
    """Byte-level hostility derived from a valid encoded message."""
    match kind % 7:
        case 0:
            return message[: n % max(len(message), 1)]          # cut short
        case 1:
            return b"[" * (n % 3000) + b"]" * (n % 3000)         # deep nesting
        case 2:
            return b'{"execute": "\xff\xfe\xc0\x80"}'           # invalid UTF-8
        case 3:
            return bytes((n * 7919 + i * 31) % 256 for i in range(n % 200))  # garbage
        case 4:
            return b'{"execute": "query-version", "id": ' + b"9" * (n % 400) + b"}"
        case 5:
            return b'"' + b"\\u" * (n % 50) + b'"'
        case _:
            return message.replace(b'"', b"'", 1 + n % 3)


class Client:
    """A raw QMP client that checks every line it reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(REPLY_TIMEOUT)
        self.buf = b""
        greeting = self.read_message()
        if set(greeting) != {"QMP"} or "version" not in greeting["QMP"]:
            raise QMPBroken(f"bad greeting {greeting!r}")

    def read_message(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise QMPBroken(f"no reply within {REPLY_TIMEOUT} s") from None
            if not data:
                raise EOFError
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return validate_line(line)

    def drain_ready(self) -> int:
        """Read (and check) what has already arrived, without waiting long."""
        self.sock.settimeout(0.02)
        count = 0
        try:
            while True:
                if b"\n" in self.buf:
                    line, _, self.buf = self.buf.partition(b"\n")
                    validate_line(line)
                    count += 1
                    continue
                data = self.sock.recv(65536)
                if not data:
                    break
                self.buf += data
        except (TimeoutError, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(REPLY_TIMEOUT)
        return count

    def reply(self) -> dict[str, Any]:
        while True:
            msg = self.read_message()
            if "event" not in msg:
                return msg

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode())
        return self.reply()


_QEMU_NONFINITE = re.compile(rb"([:\[,] )(?:-?inf|-?nan)(?=[,}\]])")


def validate_line(line: bytes) -> dict[str, Any]:
    """One line from the server as valid QMP (raises QMPBroken otherwise)."""
    if not line.endswith(b"\r"):
        raise QMPBroken(f"line does not end in CRLF: {line[:200]!r}")
    try:
        msg = json.loads(line)
    except ValueError as exc:
        # QEMU 7.2 prints non-finite floats bare (an "id" of 1e999 comes back as
        # ``"id": inf``, verified against qemu-storage-daemon); the server copies that
        try:
            msg = json.loads(_QEMU_NONFINITE.sub(rb"\1null", line))
        except ValueError:
            raise QMPBroken(f"not JSON ({exc}): {line[:300]!r}") from None
    if not isinstance(msg, dict):
        raise QMPBroken(f"not an object: {line[:300]!r}")
    keys = set(msg) - {"id"}
    if keys == {"return"} or keys == {"QMP"}:
        return msg
    if keys == {"error"}:
        err = msg["error"]
        if not (isinstance(err, dict) and set(err) == {"class", "desc"}
                and isinstance(err["class"], str) and isinstance(err["desc"], str)):
            raise QMPBroken(f"malformed error: {msg!r}")
        if "Internal error" in err["desc"]:
            raise QMPBroken(f"unhandled exception in the engine: {err['desc']}")
        return msg
    if keys == {"event", "data", "timestamp"} and "id" not in msg:
        ts = msg["timestamp"]
        if isinstance(msg["event"], str) and set(ts) == {"seconds", "microseconds"}:
            return msg
    raise QMPBroken(f"not a QMP message: {msg!r}")


def check_case(chunks: list[bytes], root: Path) -> int:
    """Send ``chunks`` from a hostile client; check the properties. Returns replies seen."""
    make_files(root)
    server = InProcessServer(Engine(root=root))
    try:
        observer = Client(server.connect())
        if "return" not in observer.execute("qmp_capabilities"):
            raise QMPBroken("observer could not negotiate")
        hostile_sock = server.connect()
        hostile = Client(hostile_sock)
        replies = 0
        for chunk in chunks:
            hostile_sock.sendall(chunk)
            answer = observer.execute("query-version")
            if "return" not in answer or "qemu" not in answer["return"]:
                raise QMPBroken(f"observer got {answer!r} after a hostile chunk")
            replies += hostile.drain_ready()
        hostile_sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + REPLY_TIMEOUT * 3
        while time.monotonic() < deadline:
            try:
                hostile.read_message()
            except (EOFError, ConnectionError):
                break
            replies += 1
        else:
            raise QMPBroken("the server did not close a client that closed its side")
        hostile_sock.close()
        fresh = Client(server.connect())
        if "return" not in fresh.execute("qmp_capabilities"):
            raise QMPBroken("a new client could not negotiate after the hostile one")
        fresh.execute("query-named-block-nodes")
        fresh.sock.close()
        observer.sock.close()
        if not server.running:
            raise QMPBroken("the server stopped")
        return replies
    finally:
        server.close()

"""A QMP load script: many clients, good and bad commands, every reply checked.

Used by the load test (small) and by ``tests/bench/bench_server.py`` (10,000
commands, beside qemu-storage-daemon on the same script). Each client connects,
negotiates, then sends its share of a fixed mix one command at a time and checks
that every reply is the expected kind:

* queries (``query-named-block-nodes``, ``query-version``, ``x-debug-query-block-graph``)
  answer ``return``;
* ``blockdev-add`` then ``blockdev-del`` of the client's own image answer ``return``
  (so the graph ends as it began);
* malformed JSON, a non-object, an unknown command, a wrong argument type and an
  unexpected member answer ``GenericError``/``CommandNotFound``.

A client that loses its connection or gets an unexpected reply counts as a failure.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadResult:
    commands: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    #: each command's round trip (sent to answered), in seconds
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile round trip, in seconds (nearest rank)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _mix(image: Path, node: str) -> list[tuple[str, bytes, Callable[[dict[str, Any]], bool]]]:
    def ok(reply: dict[str, Any]) -> bool:
        return "return" in reply

    def error(cls: str) -> Callable[[dict[str, Any]], bool]:
        return lambda reply: reply.get("error", {}).get("class") == cls

    add = {"execute": "blockdev-add", "arguments": {
        "driver": "qcow2", "node-name": node,
        "file": {"driver": "file", "filename": str(image)}}}
    return [
        ("query-nodes", b'{"execute":"query-named-block-nodes"}', ok),
        ("query-version", b'{"execute":"query-version","id":1}', ok),
        ("blockdev-add", json.dumps(add).encode(), ok),
        ("query-flat", b'{"execute":"query-named-block-nodes","arguments":{"flat":true}}', ok),
        ("blockdev-del",
         json.dumps({"execute": "blockdev-del", "arguments": {"node-name": node}}).encode(), ok),
        ("malformed", b'{"execute": tru}', error("GenericError")),
        ("stray", b"@\n", error("GenericError")),
        ("not-object", b"[1, 2]", error("GenericError")),
        ("unknown", b'{"execute":"no-such-command","id":"u"}', error("CommandNotFound")),
        ("wrong-type", b'{"execute":"query-named-block-nodes","arguments":{"flat":"yes"}}',
         error("GenericError")),
        ("unexpected", b'{"execute":"query-version","bogus":1}', error("GenericError")),
        ("debug-graph", b'{"execute":"x-debug-query-block-graph"}', ok),
    ]


def _client(path: str, image: Path, node: str, count: int, result: LoadResult,
            lock: threading.Lock, start: threading.Barrier) -> None:
    mix = _mix(image, node)
    kinds: dict[str, int] = {}
    failures: list[str] = []
    latencies: list[float] = []
    done = 0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    buf = b""

    def read_message() -> dict[str, Any]:
        nonlocal buf
        while True:
            while b"\r\n" not in buf:
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("server closed the connection")
                buf += data
            line, _, buf = buf.partition(b"\r\n")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    try:
        sock.connect(path)
        read_message()  # greeting
        sock.sendall(b'{"execute":"qmp_capabilities"}')
        assert "return" in read_message()
        start.wait()
        i = 0
        added = False
        while done < count:
            kind, data, check = mix[i % len(mix)]
            i += 1
            # keep add/del paired so the graph ends as it began
            if kind == "blockdev-add":
                if count - done < 3:
                    continue
                added = True
            if kind == "blockdev-del":
                if not added:
                    continue
                added = False
            sent = time.perf_counter()
            sock.sendall(data)
            reply = read_message()
            latencies.append(time.perf_counter() - sent)
            done += 1
            kinds[kind] = kinds.get(kind, 0) + 1
            if not check(reply):
                failures.append(f"{node} {kind}: {reply}")
    except Exception as exc:  # a lost connection is a failure, reported, not raised
        failures.append(f"{node}: {type(exc).__name__}: {exc}")
    finally:
        sock.close()
    with lock:
        result.commands += done
        result.failures += failures
        result.latencies += latencies
        for k, v in kinds.items():
            result.kinds[k] = result.kinds.get(k, 0) + v


def run_load(sockets: str | list[str], images: list[Path], commands: int) -> LoadResult:
    """Run ``commands`` commands split over one client per image, concurrently.

    ``sockets``: one path for all clients, or one per client (qemu-storage-daemon
    serves one client per monitor socket, so it gets one monitor per client).
    """
    paths = [sockets] * len(images) if isinstance(sockets, str) else list(sockets)
    assert len(paths) == len(images)
    result = LoadResult()
    lock = threading.Lock()
    start = threading.Barrier(len(images) + 1)
    share = commands // len(images)
    threads = [threading.Thread(target=_client, args=(paths[i], img, f"load{i}",
                                                      share + (i < commands % len(images)),
                                                      result, lock, start))
               for i, img in enumerate(images)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    return result

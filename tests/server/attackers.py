"""Hostile QMP clients, run in a process of their own.

``python -m tests.server.attackers SOCKET [--non-readers N] [--huge N] [--mib N]``
connects N clients that pipeline commands and never read a byte, and N clients that
each send one string of ``--mib`` MiB (odd ones as an argument, even ones as the
``id`` the reply must echo) and read their answer. It prints one JSON line: the
start of each huge client's answer and its end, and how many non-readers got
stuck (the server stopped reading them), then exits once every huge client has
its answer.

The attack runs apart from the test that measures the server, so that the
attackers' own work (sending and reading 60 MiB lines) cannot slow the measuring
client down and be taken for the server's doing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading

from tests.server.support import RawClient


def non_reader(path: str, stuck: list[int], held: list[socket.socket]) -> None:
    """Negotiate without reading, then pipeline commands whose replies echo a 4 kB
    id, until the server stops reading this client (the send times out)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    held.append(sock)
    sock.settimeout(1.0)
    command = json.dumps({"execute": "query-named-block-nodes", "id": "n" * 4000}).encode()
    try:
        sock.sendall(b'{"execute": "qmp_capabilities"}')
        for _ in range(10_000):
            sock.sendall(command * 16)
    except TimeoutError:
        stuck.append(1)


def huge_sender(path: str, n: int, payload: bytes, answers: list[str | None]) -> None:
    with RawClient(path, timeout=600) as c:
        c.negotiate()
        if n % 2:
            head, tail = b'{"execute": "query-version", "arguments": {"x": "', b'"}}'
        else:
            head, tail = b'{"execute": "query-version", "id": "', b'"}'
        c.send(head)
        c.send(payload)
        c.send(tail)
        line = c.line()
        answers[n] = (line[:120] + b"..." + line[-60:]).decode("ascii", "replace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.server.attackers")
    parser.add_argument("socket")
    parser.add_argument("--non-readers", type=int, default=20)
    parser.add_argument("--huge", type=int, default=10)
    parser.add_argument("--mib", type=int, default=60)
    args = parser.parse_args(argv)
    stuck: list[int] = []
    held: list[socket.socket] = []
    payload = b"x" * (args.mib << 20)
    answers: list[str | None] = [None] * args.huge
    readers = [threading.Thread(target=non_reader, args=(args.socket, stuck, held))
               for _ in range(args.non_readers)]
    senders = [threading.Thread(target=huge_sender, args=(args.socket, n, payload, answers))
               for n in range(args.huge)]
    for t in readers + senders:
        t.start()
    for t in readers + senders:
        t.join()
    print(json.dumps({"answers": answers, "stuck_non_readers": len(stuck)}), flush=True)
    for sock in held:
        with contextlib.suppress(OSError):
            sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the server does with clients that do not keep up, in process (quick).

- A client that sends commands and never reads is not dropped: the server stops
  answering it, then stops reading it (qemu-storage-daemon 7.2 does the same: it read
  4 MiB of such a client's commands and then nothing more, with its memory flat), and
  answers everything once the client reads again.
- Events go to every negotiated client whether it reads or not; one that lets more
  than ``max_output_buffer`` bytes of them pile up is disconnected, and the log says so.
  The clients that read get every event.
- A client that holds the large-message slot and then goes quiet is disconnected
  once another client has waited ``large_message_idle`` seconds for the slot; the
  waiting client's message is then read and answered.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from engine.server.inprocess import InProcessServer
from tests.server.support import RawClient

MIB = 1 << 20


def _wait_for(condition, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _is_dropped(sock: socket.socket) -> bool:
    """True once the server has closed or reset this client's connection."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def test_a_client_that_does_not_read_is_paused_not_dropped() -> None:
    with InProcessServer() as srv:
        lazy = RawClient(srv.connect(), timeout=10).negotiate()
        command = json.dumps({"execute": "query-version", "id": "x" * 2000}).encode()
        lazy.sock.settimeout(2.0)
        sent = 0
        with pytest.raises(TimeoutError):
            for _ in range(100_000):           # the server stops reading us
                lazy.sock.sendall(command)
                sent += 1
        assert sent < 10_000, sent             # a bounded amount, then no more
        with RawClient(srv.connect()) as other:
            assert "return" in other.negotiate().cmd("query-version")
        lazy.sock.settimeout(30)
        answered = 0
        while answered < sent:                 # reading again: every command answered
            assert lazy.reply()["id"] == "x" * 2000
            answered += 1
        lazy.close()


def test_a_client_letting_events_pile_up_is_dropped_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine.server")
    with InProcessServer(max_output_buffer=MIB) as srv:
        deaf = RawClient(srv.connect()).negotiate()
        listener = RawClient(srv.connect(), timeout=30).negotiate()
        received: list[int] = []

        def listen() -> None:
            while len(received) < 40:
                received.append(len(listener.message()["data"]["blob"]))

        reader = threading.Thread(target=listen)
        reader.start()
        for n in range(40):                   # paced by the reader, not by the deaf one
            srv.engine.emit("TEST_BLOB", {"n": n, "blob": "e" * (256 << 10)})
            assert _wait_for(lambda n=n: len(received) > n or not reader.is_alive())
        reader.join(60)
        assert received == [256 << 10] * 40   # the reading client got every event
        assert _wait_for(lambda: _is_dropped(deaf.sock)), "the deaf client was not dropped"
        assert any("dropping" in r.getMessage() and "does not read" in r.getMessage()
                   for r in caplog.records), caplog.text
        deaf.close()
        listener.close()


def test_a_quiet_holder_of_the_large_message_slot_is_dropped_when_others_wait(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine.server")
    with InProcessServer(large_message_idle=0.5) as srv:
        quiet = RawClient(srv.connect()).negotiate()
        quiet.send(b'{"execute": "query-version", "id": "' + b"q" * (3 * MIB))
        assert _wait_for(lambda: srv._server.slots.holders == 1)
        with RawClient(srv.connect(), timeout=60) as waiting:
            waiting.negotiate()
            waiting.send(b'{"execute": "query-version", "id": "' + b"w" * (3 * MIB) + b'"}')
            reply = waiting.reply()
            assert reply["id"] == "w" * (3 * MIB)
        assert _is_dropped(quiet.sock)
        assert any("holds a large message" in r.getMessage() for r in caplog.records), \
            caplog.text
        quiet.close()

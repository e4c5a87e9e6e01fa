"""A QMP peer that misbehaves on cue: a unix-socket proxy in front of the real engine.

Clients connect to :attr:`FaultyPeer.path` and talk to a real bundled engine (the
in-process server, so every byte they get is a byte the engine wrote) until the
client sends the command named in :attr:`FaultyPeer.fault`; then the peer

- ``drop``: closes the connection instead of forwarding it;
- ``stall``: swallows it and never answers (the connection stays open);
- ``garbage``: answers a line that is not JSON.

``greeting`` faults act at connection time: ``silent`` never sends the greeting,
``garbage`` sends a non-QMP line instead. Faults are one-shot unless ``sticky``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from engine.server.jsonstream import JSONParseError, JSONStream


class FaultyPeer:
    def __init__(self, path: Path, upstream: Callable[[], socket.socket]) -> None:
        self.path = str(path)
        self.upstream = upstream
        self.fault: tuple[str, str] | None = None
        self.greeting: str | None = None
        self.sticky = False
        self.triggered = 0
        self._open: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(8)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.greeting == "silent":
            return                                    # keep it open, say nothing
        if self.greeting == "garbage":
            with contextlib.suppress(OSError):
                client.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            return
        up = self.upstream()
        self._open.append(up)
        threading.Thread(target=self._pump, args=(up, client), daemon=True).start()
        stream = JSONStream()
        try:
            while data := client.recv(65536):
                for msg in stream.feed(data):
                    if isinstance(msg, JSONParseError):
                        continue
                    fault = self.fault
                    if fault and isinstance(msg, dict) and msg.get("execute") == fault[1]:
                        self.triggered += 1
                        if not self.sticky:
                            self.fault = None
                        if fault[0] == "drop":
                            self._close(client, up)
                            return
                        if fault[0] == "garbage":
                            client.sendall(b"\xff\xfe{not json at all\r\n")
                        continue                      # stall: swallow it
                    up.sendall(json.dumps(msg).encode())
        except OSError:
            pass
        self._close(client, up)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._closed = True
        self._close(self._listener, *self._open)

"""The same bytes to qemu-storage-daemon and to the bundled server: every line back.

:meth:`WirePeer.exchange` opens a fresh connection, reads the greeting, sends the
given chunks, and returns every line the peer wrote in answer, byte for byte. To know
when the answers are complete whatever the chunks left half-done (an open string, a
number waiting for its end, recovery after an error), it then sends :data:`RESET` —
a 0xFF byte, which ends any token as an error and leaves the lexer skipping, and a
newline, which brings it back to its start state with no message pending — and a
command tagged :data:`SENTINEL`; the lines before that command's reply are the
answers. Both peers get the same trailer, so its own error line is compared too.

qemu-storage-daemon's monitor serves one connection at a time; each exchange closes
its connection before the next one opens.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from engine.server.inprocess import InProcessServer
from tests.support.qemu import QSD, connect_monitor, wait_until_initialized

RESET = b"\xff\n"
SENTINEL = b"bg-sentinel-7f3a"
TRAILER = RESET + b'{"execute": "' + SENTINEL + b'", "id": "' + SENTINEL + b'"}'
#: how long one exchange may take before the peer counts as hung
EXCHANGE_SECONDS = 30.0


def _read_answers(sock: socket.socket) -> list[bytes]:
    """Lines up to (not including) the sentinel's reply."""
    buf = b""
    lines: list[bytes] = []
    deadline = time.monotonic() + EXCHANGE_SECONDS
    while True:
        while b"\r\n" not in buf:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError(f"the peer hung up; answers so far: {lines}")
            buf += data
        line, _, buf = buf.partition(b"\r\n")
        if b'"id": "' + SENTINEL + b'"' in line:
            return lines
        lines.append(line)


def _exchange(sock: socket.socket, chunks: list[bytes]) -> list[bytes]:
    sock.settimeout(EXCHANGE_SECONDS)
    greeting = b""
    while b"\r\n" not in greeting:
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("no greeting")
        greeting += data
    for chunk in chunks:
        sock.sendall(chunk)
    sock.sendall(TRAILER)
    return _read_answers(sock)


class QsdWire:
    """qemu-storage-daemon 7.2 with one monitor, for :meth:`exchange`."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bg-wire-"))
        self.socket_path = str(self.workdir / "m.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> QsdWire:
        pidfile = str(self.workdir / "qsd.pid")
        self.proc = subprocess.Popen(
            [QSD, "--chardev", f"socket,path={self.socket_path},server=on,wait=off,id=m",
             "--monitor", "chardev=m", "--pidfile", pidfile],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_initialized(pidfile, self.proc, time.monotonic() + 20)
        return self

    def exchange(self, chunks: list[bytes]) -> list[bytes]:
        assert self.proc is not None
        sock = connect_monitor(self.socket_path, self.proc, time.monotonic() + 20)
        try:
            return _exchange(sock, chunks)
        finally:
            sock.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> QsdWire:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServeWire:
    """The bundled engine's QMP server (in process), for :meth:`exchange`."""

    def __init__(self, **server_options: int) -> None:
        self.server = InProcessServer(**server_options)

    def exchange(self, chunks: list[bytes]) -> list[bytes]:
        sock = self.server.connect()
        try:
            return _exchange(sock, chunks)
        finally:
            sock.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.close()

    def __enter__(self) -> ServeWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

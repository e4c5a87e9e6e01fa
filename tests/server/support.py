"""Test support for the QMP server: a ``blockgraph serve`` process and a raw client.

The raw client speaks bytes so tests can check the exact wire format and send input
no QMP library would (garbage, half messages); well-formed traffic in other tests
goes through qemu.qmp like any client.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class ServeProcess:
    """``python -m gui.cli serve --socket PATH [ARGS]`` as a subprocess."""

    def __init__(self, workdir: Path, *args: str, socket_name: str = "bg.sock") -> None:
        self.socket_path = str(workdir / socket_name)
        self.args = ["--socket", self.socket_path, *args]
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = ""

    def start(self, timeout: float = 20) -> ServeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gui.cli", "serve", *self.args], cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + timeout
        while not _accepts(self.socket_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"blockgraph serve did not start: {self.stderr}")
            time.sleep(0.01)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        self._collect()
        return rc

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def fds(self) -> int:
        """The server's open file descriptors right now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fd_table(self) -> dict[int, str]:
        """The server's open file descriptors and what each is (for failure messages)."""
        table: dict[int, str] = {}
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                table[int(name)] = os.readlink(f"/proc/{self.pid}/fd/{name}")
        return dict(sorted(table.items()))

    def settled_fds(self, at_most: int | None = None, timeout: float = 30,
                    quiet: float = 0.5) -> int:
        """The server's open file descriptors once it has closed the connections that
        clients closed.

        A client closing its socket does not close the server's end at once: the server
        closes it when it reads the end of the stream, a moment later (longer on a busy
        machine), so a count taken just after the clients finish can include sockets
        about to close. This polls until the count has held for ``quiet`` seconds and,
        given ``at_most``, is no more than that. Past ``timeout`` it returns the count
        as it stands, so a descriptor that stays open still shows.
        """
        deadline = time.monotonic() + timeout
        count = self.fds()
        since = time.monotonic()
        while True:
            time.sleep(0.05)
            now, t = self.fds(), time.monotonic()
            if now != count:
                count, since = now, t
            elif t - since >= quiet and (at_most is None or count <= at_most):
                return count
            if t > deadline:
                return count

    def _collect(self) -> None:
        if self.proc is not None and self.proc.stderr is not None and not self.stderr:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._collect()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepts(path: str) -> bool:
    """True once a server listens at ``path`` (a probe connection, closed at once)."""
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


class RawClient:
    """A QMP client on a plain socket: send bytes, read ``\\r\\n``-terminated lines."""

    def __init__(self, path_or_socket: str | socket.socket, timeout: float = 10) -> None:
        if isinstance(path_or_socket, socket.socket):
            self.sock = path_or_socket
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path_or_socket)
        self.sock.settimeout(timeout)
        self._buf = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next message line, terminator included; b"" at end of stream."""
        if b"\r\n" not in self._buf:
            # a line may be many MiB long: look for its end in what arrives, not in
            # everything so far
            parts = [self._buf]
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    self._buf = b""
                    return b"".join(parts)
                tail = parts[-1][-1:] + data
                parts.append(data)
                if b"\r\n" in tail:
                    break
            self._buf = b"".join(parts)
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line + b"\r\n"

    def message(self) -> dict[str, Any]:
        raw = self.line()
        assert raw, "connection closed"
        return json.loads(raw)

    def reply(self) -> dict[str, Any]:
        """The next reply, skipping events."""
        while True:
            msg = self.message()
            if "event" not in msg:
                return msg

    def cmd(self, command: str, arguments: dict[str, Any] | None = None,
            **extra: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {"execute": command, **extra}
        if arguments is not None:
            msg["arguments"] = arguments
        self.send(json.dumps(msg).encode())
        return self.reply()

    def negotiate(self) -> RawClient:
        assert self.cmd("qmp_capabilities") == {"return": {}}
        return self

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

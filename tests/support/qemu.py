"""Real QEMU for tests: qemu-img / qemu-io helpers and a qemu-storage-daemon peer.

The differential tests run the same QMP against the bundled engine and against
``qemu-storage-daemon`` 7.2; this module owns the QEMU side. Replies are kept as
the raw QMP JSON (``{"return": ...}`` or ``{"error": {"class", "desc"}}``) so the
two peers can be compared member by member.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
QEMU_IO = shutil.which("qemu-io") or "qemu-io"
QSD = shutil.which("qemu-storage-daemon") or "qemu-storage-daemon"


def run(*cmd: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; raise with its stderr on failure."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


def drain_events(qmp: QEMUMonitorProtocol) -> list[dict[str, Any]]:
    """Every event the client has received so far, in order, none dropped.

    The legacy client's ``get_events(wait=False)`` + ``clear_events()`` idiom loses
    events: with an empty queue, ``get_events`` lets the loop read the socket, returns
    only the first event of that read, and ``clear_events`` then throws the rest away
    (e.g. ``concluded`` and ``null`` arriving together after ``BLOCK_JOB_COMPLETED``).
    """
    events = []
    while (event := qmp.pull_event(wait=False)) is not None:
        events.append(event)
    return events


def qemu_img(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(QEMU_IMG, *args, check=check)


def qemu_io(
    image: str | os.PathLike[str], *commands: str, fmt: str = "qcow2", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run qemu-io commands (e.g. ``"write -P 0xab 0 64k"``) on an image."""
    args: list[str] = ["-f", fmt]
    for c in commands:
        args += ["-c", c]
    return run(QEMU_IO, *args, str(image), check=check)


def create(
    path: str | os.PathLike[str],
    size: int | str,
    fmt: str = "qcow2",
    backing: str | None = None,
    backing_fmt: str | None = None,
    options: str | None = None,
) -> Path:
    """``qemu-img create``; a backing file gets ``-F`` (its format) as QEMU requires."""
    args: list[str] = ["create", "-q", "-f", fmt]
    if backing is not None:
        args += ["-b", backing, "-F", backing_fmt or "qcow2"]
    if options:
        args += ["-o", options]
    args += [str(path), str(size)]
    qemu_img(*args)
    return Path(path)


def info(path: str | os.PathLike[str], backing_chain: bool = False) -> Any:
    args = ["info", "--output=json"]
    if backing_chain:
        args.append("--backing-chain")
    return json.loads(qemu_img(*args, str(path)).stdout)


def check(path: str | os.PathLike[str], fmt: str = "qcow2") -> dict[str, Any]:
    """``qemu-img check --output=json``; asserts the image is clean (no errors, no leaks)."""
    proc = qemu_img("check", "--output=json", "-f", fmt, str(path), check=False)
    assert proc.returncode == 0, f"qemu-img check {path} exited {proc.returncode}:\n{proc.stdout}"
    report = json.loads(proc.stdout)
    assert report.get("check-errors", 0) == 0, report
    assert "corruptions" not in report and "leaks" not in report, report
    return report


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], fmt_a: str | None = None,
            fmt_b: str | None = None) -> bool:
    """True when the guest content of two images is equal (``qemu-img compare``)."""
    args: list[str] = ["compare"]
    if fmt_a:
        args += ["-f", fmt_a]
    if fmt_b:
        args += ["-F", fmt_b]
    proc = qemu_img(*args, str(a), str(b), check=False)
    if proc.returncode > 1:
        raise AssertionError(f"qemu-img compare failed: {proc.stdout}{proc.stderr}")
    return proc.returncode == 0


def map_json(path: str | os.PathLike[str], fmt: str = "qcow2") -> list[dict[str, Any]]:
    return json.loads(qemu_img("map", "--output=json", "-f", fmt, str(path)).stdout)


def connect_monitor(path: str, proc: subprocess.Popen[bytes], deadline: float
                    ) -> socket.socket:
    """A socket connected to the daemon's monitor at ``path``.

    The socket file appears at bind(), a moment before the daemon listens: connect
    until it is accepted, then speak QMP on that very socket. A failed QMP connect
    attempt can leave a half-open connection that holds the daemon's only monitor
    slot, and the next attempt then waits forever."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_until_initialized(pidfile: str, proc: subprocess.Popen[bytes], deadline: float
                           ) -> None:
    """Wait until qemu-storage-daemon has written its ``--pidfile``: it does so once its
    options are processed, just before its main loop runs. A client that connects before
    then is now and then greeted twice (QEMU 7.2: 2 in 300 starts here; none in 400 when
    connecting after the pidfile), and qemu.qmp takes the second greeting for the
    answer to ``qmp_capabilities``."""
    while not os.path.exists(pidfile):
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"qemu-storage-daemon did not start: {out}")
        time.sleep(0.005)


def negotiate(sock: socket.socket, seconds: float = 20.0) -> None:
    """Enter command mode on a fresh monitor socket, whatever greetings come first.

    QEMU 7.2 now and then greets a client that connects while it starts twice (seen
    even after its ``--pidfile``, under load), and qemu.qmp takes the second greeting
    for the reply to ``qmp_capabilities``. Both greetings are queued when the
    connection opens, so before the reply to a command sent after the first of them:
    reading up to that reply here, skipping greetings, leaves qemu.qmp a socket in
    command mode with nothing of the start-up left unread."""
    deadline = time.monotonic() + seconds
    buffer = b""

    def message() -> dict[str, Any]:
        nonlocal buffer
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise TimeoutError(f"no QMP message from the monitor in {seconds:g} s")
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the monitor closed the connection while negotiating")
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        return dict(json.loads(line))

    first = message()
    if "QMP" not in first:
        raise ConnectionError(f"expected a QMP greeting, got {first}")
    sock.sendall(b'{"execute": "qmp_capabilities", "id": "negotiate"}\n')
    while True:
        reply = message()
        if reply.get("id") == "negotiate":
            if "return" not in reply:
                raise ConnectionError(f"qmp_capabilities refused: {reply}")
            break
    if buffer.strip():
        raise ConnectionError(f"unexpected QMP data after negotiation: {buffer!r}")


#: how long a started daemon may take to greet its first client before it is started
#: again (a greeting takes milliseconds; one rare start in CI never sent it, and the
#: QMP library's connect waits for it without a limit), and how many starts to try
GREETING_SECONDS = 20.0
STARTS = 3


def start_until_greeted(launch: Callable[[], socket.socket], kill: Callable[[], None],
                        seconds: float = GREETING_SECONDS) -> socket.socket:
    """``launch()`` a daemon until its monitor greets within ``seconds`` (the greeting is
    left unread for the QMP client); ``kill()`` each one that does not."""
    for attempt in range(1, STARTS + 1):
        sock = launch()
        if select.select([sock], [], [], seconds)[0]:
            return sock
        sock.close()
        kill()
        if attempt < STARTS:
            warnings.warn(f"qemu-storage-daemon start {attempt}: no QMP greeting in "
                          f"{seconds:g} s, starting it again", stacklevel=2)
    raise RuntimeError(f"qemu-storage-daemon sent no QMP greeting in {seconds:g} s, "
                       f"{STARTS} times")


class QemuStorageDaemon:
    """A real qemu-storage-daemon with a QMP monitor on a unix socket in a temp dir.

    Started as a user starts it: ``--chardev socket,path=SOCK,server=on,
    wait=off,id=c0 --monitor chardev=c0``. ``execute`` returns the raw reply.
    """

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *extra: str) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bg-qsd-"))
        self.socket_path = str(self.workdir / "qsd.sock")
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp: QEMUMonitorProtocol | None = None
        #: events a helper pulled while waiting for another one, for the next events()
        self.held_events: list[dict[str, Any]] = []

    #: see :func:`start_until_greeted` (a test shortens it)
    GREETING_SECONDS = GREETING_SECONDS

    def start(self) -> QemuStorageDaemon:
        """Start the daemon and negotiate QMP; a start that fails at any step leaves no
        daemon behind (a failed negotiation used to leave one running for the session)."""
        try:
            sock = start_until_greeted(self._launch, self._kill, self.GREETING_SECONDS)
            negotiate(sock)
            self.qmp = QEMUMonitorProtocol(sock)
            self.qmp.connect(negotiate=False)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> socket.socket:
        """Start the daemon; return a socket connected to its monitor."""
        pidfile = str(self.workdir / "qsd.pid")
        for stale in (self.socket_path, pidfile):     # a previous attempt's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        self.proc = subprocess.Popen(
            [QSD, "--chardev", f"socket,path={self.socket_path},server=on,wait=off,id=c0",
             "--monitor", "chardev=c0", "--pidfile", pidfile, *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        wait_until_initialized(pidfile, self.proc, deadline)
        return connect_monitor(self.socket_path, self.proc, deadline)

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command; return ``{"return": ...}`` or ``{"error": {...}}``."""
        assert self.qmp is not None, "daemon not started"
        reply = self.qmp.cmd_raw(command, arguments)
        reply.pop("id", None)
        return reply

    def events(self, wait: bool | float = False) -> list[dict[str, Any]]:
        """The events received so far; with ``wait``, first wait for at least one."""
        assert self.qmp is not None
        held, self.held_events = self.held_events, []
        first = [self.qmp.pull_event(wait=wait)] if wait and not held else []
        return held + first + drain_events(self.qmp)

    def stop(self) -> None:
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.close()
            self.qmp = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> QemuStorageDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

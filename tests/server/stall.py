"""Attacks on ``blockgraph serve`` and what they cost it, for the attack tests
(:mod:`tests.server.test_no_client_can_stall`) and the benchmark that reports the
figures (:mod:`tests.bench.bench_server_attack`): memory, the answers of a client
that behaves, and the time quit and SIGTERM take with stuck clients."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.server.support import REPO, RawClient, ServeProcess

MIB = 1 << 20


def peak_rss(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def runqueue_wait(pid: int) -> float:
    """Seconds the process's main thread has spent ready to run but waiting for a CPU."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


class Prober:
    """A client that asks ``query-version`` again and again and times each answer."""

    def __init__(self, path: str) -> None:
        self.client = RawClient(path, timeout=60).negotiate()
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            reply = self.client.cmd("query-version")
            self.latencies.append(time.monotonic() - started)
            assert "return" in reply, reply
            self._stop.wait(0.01)

    @contextlib.contextmanager
    def running(self) -> Iterator[Prober]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(120)
            self.client.close()


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1]


@dataclass
class AttackResult:
    """What 20 non-reading clients and 10 senders of 60 MiB strings did to a server."""

    peak: int                          # the server's peak resident memory, bytes
    latencies: list[float] = field(default_factory=list)   # query-version meanwhile
    attack: dict = field(default_factory=dict)             # the attackers' report
    still_answers: bool = False        # a new client is served afterwards
    #: seconds the server's event loop thread waited for a CPU during the attack
    loop_waited_for_cpu: float = 0.0


def slow_readers_and_huge_messages(tmp_path: Path, *, non_readers: int = 20,
                                   huge: int = 10, mib: int = 60,
                                   attackers_nice: int = 0) -> AttackResult:
    """``attackers_nice``: the attacking process's niceness. On a machine of two
    cores the attackers' own work (sending 600 MiB, 30 threads) takes CPU time from
    the server; a remote attacker's would not."""
    with ServeProcess(tmp_path) as srv:
        prober = Prober(srv.socket_path)
        waited = runqueue_wait(srv.pid)
        with prober.running():
            attack = subprocess.run(
                ["nice", "-n", str(attackers_nice), sys.executable, "-m",
                 "tests.server.attackers", srv.socket_path,
                 "--non-readers", str(non_readers), "--huge", str(huge), "--mib", str(mib)],
                cwd=REPO, capture_output=True, text=True, timeout=900)
            probes_during_attack = len(prober.latencies)
            waited = runqueue_wait(srv.pid) - waited
        if attack.returncode != 0:
            raise AssertionError(attack.stderr)
        result = AttackResult(peak_rss(srv.pid), prober.latencies[:probes_during_attack],
                              json.loads(attack.stdout), loop_waited_for_cpu=waited)
        with RawClient(srv.socket_path) as c:
            c.negotiate()
            result.still_answers = "return" in c.cmd("query-version")
    return result


def idle_latencies(tmp_path: Path, seconds: float) -> list[float]:
    """The same client's round trips to a server nobody attacks, for ``seconds``: what
    the machine itself (its load, its scheduler) adds to every answer."""
    with ServeProcess(tmp_path) as srv:
        prober = Prober(srv.socket_path)
        with prober.running():
            time.sleep(seconds)   # a measurement of so long, not a wait for an event
        return list(prober.latencies)


def stuck_clients(path: str) -> list[socket.socket]:
    """One client that fills its output and reads nothing, one stopped half-way through
    a 10 MiB message."""
    full = connect(path)
    full.settimeout(0.5)
    with contextlib.suppress(OSError):
        full.sendall(b'{"execute": "qmp_capabilities"}')
        command = json.dumps({"execute": "query-version", "id": "f" * 8000}).encode()
        while True:
            full.sendall(command * 16)   # until the server stops reading us
    half = connect(path)
    half.sendall(b'{"execute": "qmp_capabilities"}{"execute": "query-version", "id": "')
    half.sendall(b"h" * (10 * MIB))
    return [full, half]


def time_to_end(tmp_path: Path, how: str) -> tuple[float, int]:
    """Seconds from ``quit`` (its reply) or SIGTERM to the server's exit, with stuck
    clients connected; and the exit status."""
    with ServeProcess(tmp_path) as srv:
        stuck = stuck_clients(srv.socket_path)
        try:
            with RawClient(srv.socket_path) as c:
                c.negotiate()
                if "return" not in c.cmd("query-version"):   # the stuck ones are in place
                    raise AssertionError("the server does not answer")
                started = time.monotonic()
                if how == "quit":
                    c.send(b'{"execute": "quit"}')
                    if c.line() != b'{"return": {}}\r\n':
                        raise AssertionError("quit was not answered")
                else:
                    srv.signal(signal.SIGTERM)
                status = srv.wait(timeout=30)
                return time.monotonic() - started, status
        finally:
            for sock in stuck:
                sock.close()

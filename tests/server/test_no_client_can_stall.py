"""``blockgraph serve`` under clients that attack it: none can stall it or bloat it.

- **Slow readers and huge messages at once**: 20 clients pipeline commands and never
  read a byte, while 10 others each send a 60 MiB string (half as an argument, half as
  an ``id`` that the reply must echo back). Meanwhile a well-behaved client keeps
  asking ``query-version``. The server's peak resident memory stays under 300 MiB,
  every huge message gets its answer, and the well-behaved client's answers keep
  coming promptly.
- **Huge numbers**: a 16 MiB integer is answered as QEMU answers it (``inf``), without
  holding up another client.
- **quit and SIGTERM** end the server within a second while a client that reads
  nothing holds a full output buffer and another is half-way through a huge message.

The attackers run in a process of their own (:mod:`tests.server.attackers`), so their
own work cannot slow the measuring client. Timing: a loaded two-core machine can
pause any process for a while, so the bound asserted is the acceptance figure (100 ms)
for 95 % of the answers and ten times that for the slowest one; the test prints the
figures it measured. A server that parses on its event loop misses both by seconds
(a 60 MiB message took it minutes), one that buffers for slow readers misses the
memory bound by hundreds of MiB.
"""

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
from pathlib import Path

import pytest

from tests.server.support import REPO, RawClient, ServeProcess

pytestmark = [pytest.mark.slow]

MIB = 1 << 20
#: peak resident memory the server may reach under the attack
RSS_LIMIT = 300 * MIB
#: what 95 % of the well-behaved client's answers, and the slowest one, stay under
LATENCY = 0.100
WORST_LATENCY = 1.0


def peak_rss(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


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


def test_slow_readers_and_huge_messages_stall_no_one(tmp_path: Path) -> None:
    with ServeProcess(tmp_path) as srv:
        prober = Prober(srv.socket_path)
        with prober.running():
            attack = subprocess.run(
                [sys.executable, "-m", "tests.server.attackers", srv.socket_path,
                 "--non-readers", "20", "--huge", "10", "--mib", "60"],
                cwd=REPO, capture_output=True, text=True, timeout=900)
            probes_during_attack = len(prober.latencies)
        assert attack.returncode == 0, attack.stderr
        peak = peak_rss(srv.pid)
        latencies = prober.latencies[:probes_during_attack]
        result = json.loads(attack.stdout)
        # the server stopped reading every client that does not read
        assert result["stuck_non_readers"] == 20
        # the huge messages were all answered: errors for the arguments, echoes for ids
        answers = result["answers"]
        assert all(a.startswith('{"return": {"qemu": ') and a.endswith('xxx"}\r\n')
                   for a in answers[0::2]), answers
        assert all(a.endswith("\"Parameter 'x' is unexpected\"}}\r\n")
                   for a in answers[1::2]), answers
        with RawClient(srv.socket_path) as c:       # and the server is still fine
            c.negotiate()
            assert "return" in c.cmd("query-version")
    print(f"peak {peak / MIB:.0f} MiB, {len(latencies)} probes, median "
          f"{statistics.median(latencies) * 1000:.1f} ms, 95th percentile "
          f"{_percentile(latencies, 95) * 1000:.1f} ms, worst {max(latencies) * 1000:.1f} ms")
    assert peak < RSS_LIMIT, f"peak resident memory {peak / MIB:.0f} MiB"
    assert probes_during_attack >= 20, probes_during_attack
    assert _percentile(latencies, 95) < LATENCY, sorted(latencies)[-10:]
    assert max(latencies) < WORST_LATENCY, sorted(latencies)[-10:]


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1]


def test_a_huge_integer_is_answered_like_qemu_and_stalls_no_one(tmp_path: Path) -> None:
    """qemu-storage-daemon answers a number of more than 4,300 digits (Python's own
    limit for int()) as the double it rounds to: here ``inf``."""
    with ServeProcess(tmp_path) as srv:
        prober = Prober(srv.socket_path)
        with prober.running(), RawClient(srv.socket_path, timeout=120) as c:
            c.negotiate()
            c.send(b'{"execute": "query-version", "id": ')
            digits = b"7" * MIB
            for _ in range(16):
                c.send(digits)
            c.send(b"}")
            reply = c.line()
            c.send(b'{"execute": "query-version", "id": -' + b"1" * 5000 + b"}")
            second = c.line()
        assert reply.endswith(b', "id": inf}\r\n'), reply[:200]
        assert second.endswith(b', "id": -inf}\r\n'), second[:200]
    assert _percentile(prober.latencies, 95) < LATENCY, sorted(prober.latencies)[-10:]
    assert max(prober.latencies) < WORST_LATENCY, sorted(prober.latencies)[-10:]


def _stuck_clients(path: str) -> list[socket.socket]:
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


@pytest.mark.parametrize("how", ["quit", "SIGTERM"])
def test_quit_and_sigterm_end_the_server_within_a_second_with_stuck_clients(
        tmp_path: Path, how: str) -> None:
    with ServeProcess(tmp_path) as srv:
        stuck = _stuck_clients(srv.socket_path)
        try:
            with RawClient(srv.socket_path) as c:
                c.negotiate()
                assert "return" in c.cmd("query-version")   # the stuck ones are in place
                started = time.monotonic()
                if how == "quit":
                    c.send(b'{"execute": "quit"}')
                    assert c.line() == b'{"return": {}}\r\n'
                else:
                    srv.signal(signal.SIGTERM)
                assert srv.wait(timeout=30) == 0
                took = time.monotonic() - started
        finally:
            for sock in stuck:
                sock.close()
    assert took < 1.0, f"the server took {took:.2f} s to end"

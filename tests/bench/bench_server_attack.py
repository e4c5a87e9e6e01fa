"""``blockgraph serve`` under attack: 20 clients that never read and 10 that send
60 MiB strings at once, while one well-behaved client asks ``query-version``.

Reported against the targets of the server's promise: its peak resident memory
(< 300 MiB), the 95th percentile and the worst of the well-behaved client's round
trips (< 100 ms), and the time ``quit`` and SIGTERM take to end the server with a
client that reads nothing and one half-way through a huge message (< 1 s; the median
of :data:`ROUNDS`). The attack itself is the test's (:mod:`tests.server.stall`).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from tests.bench.report import Report
from tests.server.stall import MIB, percentile, slow_readers_and_huge_messages, time_to_end

ROUNDS = 5


def run(report: Report) -> None:
    work = Path(tempfile.mkdtemp(prefix="bg-bench-attack-"))
    try:
        (work / "attack").mkdir()
        result = slow_readers_and_huge_messages(work / "attack")
        if not result.still_answers or len(result.latencies) < 2:
            raise AssertionError("the server stopped answering under the attack")
        what = "20 non-reading clients + 10 x 60 MiB strings"
        report.add("server attack", f"peak memory, {what}", result.peak / MIB, "MiB",
                   target="< 300 MiB")
        report.add("server attack", f"query-version p95 meanwhile, {what}",
                   percentile(result.latencies, 95) * 1000, "ms", target="< 100 ms")
        report.add("server attack", f"query-version worst meanwhile, {what}",
                   max(result.latencies) * 1000, "ms", target="< 1000 ms")
        for how in ("quit", "SIGTERM"):
            times = []
            for n in range(ROUNDS):
                (work / f"{how}{n}").mkdir()
                took, status = time_to_end(work / f"{how}{n}", how)
                if status != 0:
                    raise AssertionError(f"{how}: exit status {status}")
                times.append(took)
            report.add("server attack", f"{how} to exit with stuck clients, median of "
                       f"{ROUNDS} ({min(times):.2f}-{max(times):.2f} s)",
                       statistics.median(times), "s", target="< 1 s")
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""``blockgraph serve`` under attack: 20 clients that never read and 10 that send
60 MiB strings at once, while one well-behaved client asks ``query-version``.

Reported against the targets of the server's promise: its peak resident memory
(< 300 MiB), the 99th percentile and the worst of the well-behaved client's round
trips (< 100 ms, every answer), and the time ``quit`` and SIGTERM take to end the
server with a client that reads nothing and one half-way through a huge message (< 1 s;
the median of :data:`ROUNDS`). The attack runs :data:`ATTACKS` times; each latency row
holds every run's figure (its median is the row's, its spread the best and worst run).
The attack runs twice over: as the test runs it, and with the attacking process at
nice 19 — on two cores its own work (30 threads sending 600 MiB) otherwise takes CPU
time from the server, which a remote attacker's would not; the time the server's
event loop spent ready but waiting for a CPU is reported beside. And, in the same
run, the same client against a server nobody attacks: the worst answer the shared
machine gives with no attack at all, so that a spike of the machine's is not taken
for the server's. The attack itself is the test's
(:mod:`tests.server.stall`).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from tests.bench.report import Report
from tests.server.stall import (
    MIB,
    idle_latencies,
    percentile,
    slow_readers_and_huge_messages,
    time_to_end,
)

ROUNDS = 5
ATTACKS = 3
#: the attackers' niceness in the second series (see ``slow_readers_and_huge_messages``)
ATTACKERS_NICE = 19
#: seconds of round trips to an idle server, about as many as one attack gives
IDLE_SECONDS = 10.0


def run(report: Report) -> None:
    work = Path(tempfile.mkdtemp(prefix="bg-bench-attack-"))
    try:
        what = "20 non-reading clients + 10 x 60 MiB strings"
        for nice, how in ((0, ""), (ATTACKERS_NICE, f", attackers at nice {ATTACKERS_NICE}")):
            _attack(report, work / f"nice{nice}", f"{what}{how}", nice)
        idle_p99s, idle_worsts = [], []
        for n in range(ATTACKS):
            (work / f"idle{n}").mkdir(parents=True)
            idle = idle_latencies(work / f"idle{n}", IDLE_SECONDS)
            idle_p99s.append(percentile(idle, 99) * 1000)
            idle_worsts.append(max(idle) * 1000)
        report.add("server attack", "query-version p99, no attack (the machine's own)",
                   idle_p99s, "ms", informative=True)
        report.add("server attack", "query-version worst, no attack (the machine's own)",
                   idle_worsts, "ms", informative=True)
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


def _attack(report: Report, work: Path, what: str, nice: int) -> None:
    peaks, p99s, worsts, waits = [], [], [], []
    for n in range(ATTACKS):
        (work / f"attack{n}").mkdir(parents=True)
        result = slow_readers_and_huge_messages(work / f"attack{n}", attackers_nice=nice)
        if not result.still_answers or len(result.latencies) < 2:
            raise AssertionError("the server stopped answering under the attack")
        peaks.append(result.peak / MIB)
        p99s.append(percentile(result.latencies, 99) * 1000)
        worsts.append(max(result.latencies) * 1000)
        waits.append(result.loop_waited_for_cpu)
        print(f"  {what}, run {n}: peak {peaks[-1]:.0f} MiB, {len(result.latencies)} "
              f"answers, p99 {p99s[-1]:.1f} ms, worst {worsts[-1]:.1f} ms, event loop "
              f"waited {waits[-1]:.2f} s for a CPU", flush=True)
    report.add("server attack", f"peak memory, {what}", max(peaks), "MiB",
               target="< 300 MiB")
    report.add("server attack", f"query-version p99 meanwhile, {what}", p99s, "ms",
               target="< 100 ms")
    report.add("server attack", f"query-version worst meanwhile, {what}", worsts, "ms",
               target="< 100 ms")
    report.add("server attack", f"event loop's wait for a CPU (runqueue), {what}", waits,
               "s", informative=True)

"""QMP server throughput and latency: 10,000 commands from 8 concurrent clients.

The script is the load test's (:mod:`tests.server.load`): queries, blockdev-add/del
pairs, malformed JSON, non-objects, unknown commands, wrong types, unexpected
members; every reply is checked. It runs against ``blockgraph serve`` and, in the
same run and on the same images, against qemu-storage-daemon 7.2 (given one monitor
socket per client, since a QEMU monitor serves one client at a time), in
:data:`ROUNDS` rounds that alternate between the two so that a busy spell of the
machine falls on both. Reported: the median commands per second (higher is better,
with the rounds' range), the 50th and 99th percentile of a command's round trip over
all rounds (lower is better), and the server's open file descriptors before and
after, each counted once the server has closed the connections clients closed (a
leak would show as a difference).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from tests.bench.report import Report
from tests.server.load import LoadResult, run_load
from tests.server.support import ServeProcess
from tests.support.qemu import QemuStorageDaemon, create

CLIENTS = 8
COMMANDS = 10_000
ROUNDS = 5


def _images(d: Path) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    return [create(d / f"c{i}.qcow2", "1M") for i in range(CLIENTS)]


def _serve(d: Path) -> tuple[LoadResult, int, int]:
    images = _images(d)
    with ServeProcess(d) as srv:
        # Both counts are taken once the server has closed the connections clients
        # closed (the start-up probe's, then the load's eight): a count taken at once
        # can include a socket the server has not yet seen end, on either side.
        before = srv.settled_fds()
        result = run_load(srv.socket_path, images, COMMANDS)
        after = srv.settled_fds(at_most=before)
    return result, before, after


def _qsd(d: Path) -> LoadResult:
    images = _images(d)
    extra: list[str] = []
    sockets = []
    for i in range(CLIENTS):
        path = str(d / f"m{i}.sock")
        sockets.append(path)
        extra += ["--chardev", f"socket,path={path},server=on,wait=off,id=m{i}",
                  "--monitor", f"chardev=m{i}"]
    with QemuStorageDaemon(d, *extra):
        return run_load(sockets, images, COMMANDS)


def run(report: Report) -> None:
    work = Path(tempfile.mkdtemp(prefix="bg-bench-server-"))
    try:
        ours: list[LoadResult] = []
        theirs: list[LoadResult] = []
        fds: list[tuple[int, int]] = []
        for n in range(ROUNDS):
            result, before, after = _serve(work / f"serve{n}")
            ours.append(result)
            fds.append((before, after))
            theirs.append(_qsd(work / f"qsd{n}"))
        for name, results in (("blockgraph serve", ours), ("qemu-storage-daemon", theirs)):
            for res in results:
                if res.failures or res.commands != COMMANDS:
                    raise AssertionError(f"{name}: {res.commands} commands, "
                                         f"failures: {res.failures[:5]}")
        rates = [r.per_second for r in ours]
        anchor = [r.per_second for r in theirs]
        report.add("server", f"{COMMANDS} QMP commands, {CLIENTS} clients (mixed, with bad "
                   f"input), median of {ROUNDS} (blockgraph {min(rates):.0f}-{max(rates):.0f}, "
                   f"qsd {min(anchor):.0f}-{max(anchor):.0f})",
                   statistics.median(rates), "commands/s", anchor=statistics.median(anchor),
                   anchor_name="qemu-storage-daemon 7.2", higher_is_better=True)
        pooled, pooled_qsd = _pool(ours), _pool(theirs)
        for p in (50, 99):
            report.add("server", f"command round trip, p{p}, {CLIENTS} concurrent clients",
                       pooled.percentile(p) * 1000, "ms",
                       anchor=pooled_qsd.percentile(p) * 1000,
                       anchor_name="qemu-storage-daemon 7.2")
        report.add("server", "server fds after / before the load (1 = none leaked)",
                   max(after / before for before, after in fds), "x", anchor=1.0,
                   anchor_name="no leak")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pool(results: list[LoadResult]) -> LoadResult:
    pooled = LoadResult()
    for r in results:
        pooled.latencies += r.latencies
    return pooled

"""QMP server throughput: 10,000 commands from 8 concurrent clients.

The script is the load test's (:mod:`tests.server.load`): queries, blockdev-add/del
pairs, malformed JSON, non-objects, unknown commands, wrong types, unexpected
members; every reply is checked. It runs against ``blockgraph serve`` and, in the
same run and on the same images, against qemu-storage-daemon 7.2 (given one monitor
socket per client, since a QEMU monitor serves one client at a time). Reported:
commands per second (higher is better), plus the server's open file descriptors
before and after, each counted once the server has closed the connections clients
closed (a leak would show as a difference).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.bench.report import Report
from tests.server.load import LoadResult, run_load
from tests.server.support import ServeProcess
from tests.support.qemu import QemuStorageDaemon, create

CLIENTS = 8
COMMANDS = 10_000


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
        ours, fds_before, fds_after = _serve(work / "serve")
        qsd = _qsd(work / "qsd")
        for name, res in (("blockgraph serve", ours), ("qemu-storage-daemon", qsd)):
            if res.failures or res.commands != COMMANDS:
                raise AssertionError(f"{name}: {res.commands} commands, "
                                     f"failures: {res.failures[:5]}")
        report.add("server", f"{COMMANDS} QMP commands, {CLIENTS} clients (mixed, with bad "
                   "input)", ours.per_second, "commands/s", anchor=qsd.per_second,
                   anchor_name="qemu-storage-daemon 7.2", higher_is_better=True)
        report.add("server", "server fds after / before the load (1 = none leaked)",
                   fds_after / fds_before, "x", anchor=1.0, anchor_name="no leak")
    finally:
        shutil.rmtree(work, ignore_errors=True)

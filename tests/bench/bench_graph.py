"""Block graph benchmarks: reopen transactions, long chains, big node lists.

* ``blockdev-reopen`` (validate against the rules + commit) of one node on graphs of
  10, 100 and 1,000 format nodes: a deep backing chain (rebase the node in the middle,
  so reachability has to look both ways) and a wide fan-out (one base with N
  overlays; rebase one overlay). Per-reopen time; growth vs. the graph size.
* the editor's preflight alone (``rules.check_set_backing`` on a GraphSnapshot).
* ``blockdev-add`` of the top of a 500-image qcow2 chain (the chain is opened from
  the image headers) and ``query-named-block-nodes`` (flat) on the resulting 1,000
  nodes, beside qemu-storage-daemon 7.2 on the same images.

Every timed row is the median of five runs (each reopen run: the mean of 400 reopens;
each preflight run: the mean of 100 checks); the engine and the daemon take turns.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.formats import create_qcow2
from engine.graph import rules
from engine.qmp import Engine
from tests.bench.report import Report, alternate, repeat, seconds, timed
from tests.support.qemu import QemuStorageDaemon

SIZES = (10, 100, 1000)
MIB = 1 << 20


def _images(d: Path, count: int, chained: bool) -> list[Path]:
    paths = []
    for i in range(count):
        p = d / f"img{i:04d}.qcow2"
        backing = paths[-1].name if chained and paths else None
        create_qcow2(p, MIB, backing_file=backing, backing_format="qcow2" if backing else None)
        paths.append(p)
    return paths


def _add(eng: Engine, name: str, path: Path, backing: str | None) -> None:
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": name, "backing": backing,
                                 "file": {"driver": "file", "node-name": f"{name}-f",
                                          "filename": str(path)}})


def _opts(name: str, backing: str | None) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name, "file": f"{name}-f", "backing": backing}


def _per_reopen(eng: Engine, first: list[dict[str, Any]], second: list[dict[str, Any]],
                rounds: int = 200) -> float:
    """Seconds per reopen, alternating two reopens that undo each other."""
    t0 = time.perf_counter()
    for _ in range(rounds):
        eng.execute("blockdev-reopen", {"options": first})
        eng.execute("blockdev-reopen", {"options": second})
    return (time.perf_counter() - t0) / (2 * rounds)


def bench_reopen(report: Report, d: Path) -> None:
    times: dict[str, list[float]] = {"chain": [], "fan-out": []}   # medians, by size
    images = _images(d, max(SIZES) + 1, chained=False)
    for n in SIZES:
        # deep chain n0 <- n1 <- ... <- n(n-1); rebase the middle node past its backing
        eng = Engine()
        for i in range(n):
            _add(eng, f"n{i}", images[i], f"n{i - 1}" if i else None)
        mid = n // 2
        secs = repeat(lambda e=eng, m=mid: _per_reopen(e, [_opts(f"n{m}", f"n{m - 2}")],
                                                       [_opts(f"n{m}", f"n{m - 1}")]))
        row = report.add("graph", f"reopen (validate+commit), chain of {n}",
                         [x * 1e3 for x in secs], "ms", target="< 1 ms at 1,000")
        times["chain"].append(row.ours)
        snap = eng.graph.snapshot()
        pre = repeat(seconds(lambda s=snap, m=mid: [rules.check_set_backing(
            s, f"n{m}", f"n{m - 2}") for _ in range(100)]))
        report.add("graph", f"preflight check_set_backing, chain of {n}",
                   [x / 100 * 1e3 for x in pre], "ms", target="< 1 ms (a drag hover)")
        eng.close()
        # fan-out: base + n-1 overlays on it; rebase one overlay onto another base
        eng = Engine()
        _add(eng, "base", images[0], None)
        _add(eng, "alt", images[1], None)
        for i in range(2, n + 1):
            _add(eng, f"o{i}", images[i], "base")
        secs = repeat(lambda e=eng: _per_reopen(e, [_opts("o2", "alt")],
                                                [_opts("o2", "base")]))
        row = report.add("graph", f"reopen (validate+commit), fan-out of {n}",
                         [x * 1e3 for x in secs], "ms", target="< 1 ms at 1,000")
        times["fan-out"].append(row.ours)
        eng.close()
    for kind, ts in times.items():
        report.add("graph", f"reopen growth 10 -> 1,000 nodes ({kind}; of the medians)",
                   ts[-1] / ts[0], "x", target="<= 100x (the depth growth)")


def bench_long_chain(report: Report, d: Path) -> None:
    """Opening the top of a 500-image chain (a fresh engine, a fresh daemon each run)
    and the flat node list of the 1,000 nodes that gives (both peers up, in turns)."""
    images = _images(d, 500, chained=True)
    top = {"driver": "qcow2", "node-name": "top",
           "file": {"driver": "file", "filename": str(images[-1])}}

    def ours_add() -> float:
        with Engine() as eng:
            gc.collect()    # the garbage of the runs before is not this command's work
            return timed(lambda: eng.execute("blockdev-add", top))[0]

    def qsd_add() -> float:
        qsd_dir = Path(tempfile.mkdtemp(prefix="bg-bench-qsd-"))
        try:
            with QemuStorageDaemon(qsd_dir) as qsd:
                seconds_, reply = timed(lambda: qsd.execute("blockdev-add", top))
                assert reply == {"return": {}}, reply
                return seconds_
        finally:
            shutil.rmtree(qsd_dir, ignore_errors=True)

    ours, theirs = alternate(ours_add, qsd_add)
    report.add("graph", "blockdev-add top of a 500-image chain", ours, "s", anchor=theirs,
               anchor_name="qemu-storage-daemon 7.2", target="<= 1/10 of QEMU")
    qsd_dir = Path(tempfile.mkdtemp(prefix="bg-bench-qsd-"))
    try:
        with Engine() as eng, QemuStorageDaemon(qsd_dir) as qsd:
            eng.execute("blockdev-add", top)
            assert qsd.execute("blockdev-add", top) == {"return": {}}
            count = len(eng.execute("query-named-block-nodes", {"flat": True}))
            ours, theirs = alternate(
                seconds(lambda: eng.execute("query-named-block-nodes", {"flat": True})),
                seconds(lambda: qsd.execute("query-named-block-nodes", {"flat": True})))
    finally:
        shutil.rmtree(qsd_dir, ignore_errors=True)
    report.add("graph", f"query-named-block-nodes flat, {count} nodes", ours, "s",
               anchor=theirs, anchor_name="qemu-storage-daemon 7.2",
               target="<= 1/10 of QEMU")


def run(report: Report) -> None:
    d = Path(tempfile.mkdtemp(prefix="bg-bench-graph-"))
    try:
        (d / "fan").mkdir()
        (d / "chain").mkdir()
        bench_reopen(report, d / "fan")
        bench_long_chain(report, d / "chain")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    rep = Report()
    run(rep)
    print(rep.table())

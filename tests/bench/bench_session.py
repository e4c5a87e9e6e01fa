"""Session and preflight on a 1,000-node remote graph (a real qemu-storage-daemon 7.2).

Two graphs: 1,000 ``null-co`` nodes, and 1,000 qcow2 images (2,000 nodes with their
``file`` nodes) in 20 chains of 50 added by reference (every node has a user-given name).
Deeper chains are not used: qemu-storage-daemon 7.2's *flat* ``query-named-block-nodes``
grows about cubically with chain depth for chains added by reference (1 s at 100 deep,
9 s at 200 deep on this machine), which would time the daemon, not the session. Figures:

- connect + build the model (greeting, capabilities, ``x-debug-query-block-graph``,
  ``query-named-block-nodes`` flat, ``GraphSnapshot.from_qmp``), anchored on the
  daemon's own reply time for the flat node list alone;
- an idle poll (the cheap debug-graph query; the node list is skipped);
- validating one drag target with the engine's rules: an allowed re-point in the
  middle of the chain and a refused one (cycle) — target < 1 ms each.

The first two set the session's whole work (which includes asking the daemon) beside
one query of the daemon's: they say where the time goes, and are informative. Each
is the median of five runs, taken in turns with the daemon's query.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from engine.formats import create_qcow2
from gui.executor import PlanExecutor
from gui.planner import check_intent
from gui.planner.intents import SetBacking
from gui.session import Session
from tests.bench.report import RUNS, Report
from tests.support.peer import Peer

BENCH = "session"
N = 1000
CHAIN = 50


def _flat(peer: Peer) -> float:
    t0 = time.perf_counter()
    peer.ok("query-named-block-nodes", {"flat": True})
    return time.perf_counter() - t0


async def _measure(peer: Peer, report: Report, label: str, drag: bool) -> None:
    flat: list[float] = []
    builds: list[float] = []
    session: Session | None = None
    snapshot = None
    for _ in range(RUNS):
        flat.append(_flat(peer))
        if session is not None:
            await session.close()
        session = Session(peer.endpoint, poll_interval=None, auto_reconnect=False)
        t0 = time.perf_counter()
        snapshot = await session.connect()
        builds.append(time.perf_counter() - t0)
    assert session is not None and snapshot is not None
    report.add(BENCH, f"connect + build model, {label} ({len(snapshot.nodes)} nodes)",
               [x * 1e3 for x in builds], "ms", anchor=[x * 1e3 for x in flat],
               anchor_name="qsd: query-named-block-nodes flat alone", informative=True)
    flat = []
    polls: list[float] = []
    for _ in range(RUNS):
        flat.append(_flat(peer))
        t0 = time.perf_counter()
        await session.refresh()
        polls.append(time.perf_counter() - t0)
    report.add(BENCH, f"idle poll (nothing changed), {label}", [x * 1e3 for x in polls], "ms",
               anchor=[x * 1e3 for x in flat],
               anchor_name="qsd: query-named-block-nodes flat alone", informative=True)
    if drag:
        ctx = PlanExecutor(session).context()
        # inside chain 10: nodes n500 (bottom) .. n549 (top)
        mid, top = f"n{N // 2 + CHAIN // 2}", f"n{N // 2 + CHAIN - 1}"
        allowed = SetBacking(mid, f"n{N // 2 + 2}")
        cycle = SetBacking(mid, top)
        assert check_intent(ctx, allowed) == []
        assert "cycle" in str(check_intent(ctx, cycle)[0])
        for what, intent in (("allowed", allowed), ("refused: cycle", cycle)):
            times = []
            for _ in range(200):
                t0 = time.perf_counter()
                check_intent(ctx, intent)
                times.append(time.perf_counter() - t0)
            report.add(BENCH, f"validate one drag target ({what}), {label}",
                       [x * 1e3 for x in times], "ms", target="< 1 ms")
    await session.close()


def run(report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="bg-bench-session-") as tmp:
        work = Path(tmp)
        (work / "nulls").mkdir()
        peer = Peer(work / "nulls")
        peer.start()
        try:
            for i in range(N):
                peer.ok("blockdev-add", {"driver": "null-co", "node-name": f"n{i}"})
            asyncio.run(_measure(peer, report, "1,000 null-co nodes", drag=False))
        finally:
            peer.stop()
        (work / "chain").mkdir()
        peer = Peer(work / "chain")
        peer.start()
        try:
            for i in range(N):
                path = work / f"c{i}.qcow2"
                create_qcow2(path, 1 << 20)
                args = {"driver": "qcow2", "node-name": f"n{i}",
                        "file": {"driver": "file", "filename": str(path)}}
                args["backing"] = f"n{i - 1}" if i % CHAIN else None
                peer.ok("blockdev-add", args)
            asyncio.run(_measure(peer, report, "1,000 qcow2 images in 50-deep chains", drag=True))
        finally:
            peer.stop()

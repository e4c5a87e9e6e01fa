"""Deep chains: does the engine's time per node stay flat as the chain gets deeper?

For chains opened from their headers 500 and 2,000 images deep, the engine (in process)
opens the top, answers ``query-named-block-nodes`` flat and not flat, streams an
intermediate range and commits the rest. Each row is the time *per node* on the deep
chain against the time per node on the shallow one: a ratio near 1x is linear time,
well below it means something grows faster than the depth.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.formats import create_qcow2
from engine.qmp import Engine
from tests.bench.report import Report

BENCH = "depth"
DEPTHS = (500, 2000)
TARGET = ">= 0.5x (time per node at 2,000 against 500)"


def _chain(d: Path, depth: int) -> Path:
    for i in range(depth):
        backing = {"backing_file": f"img{i - 1}.qcow2", "backing_format": "qcow2"} if i else {}
        create_qcow2(d / f"img{i}.qcow2", 1 << 20, cluster_size=4096, **backing)
    return d / f"img{depth - 1}.qcow2"


def _wait(engine: Engine, command: str, args: dict[str, Any], job: str, until: str) -> None:
    done = threading.Event()
    stop = engine.add_listener(lambda ev: done.set() if ev["event"] == "JOB_STATUS_CHANGE"
                               and ev["data"] == {"id": job, "status": until} else None)
    try:
        engine.execute(command, args)
        if not done.wait(600):
            raise RuntimeError(f"{job} never reached {until}")
    finally:
        stop()


def _times(d: Path, depth: int) -> dict[str, float]:
    top = _chain(d, depth)
    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        result = fn()
        out[name] = time.perf_counter() - t0
        return result

    with Engine() as engine:
        timed("open the top (chain from headers)", lambda: engine.execute("blockdev-add", {
            "driver": "qcow2", "node-name": "top",
            "file": {"driver": "file", "filename": str(top)}}))
        flat = timed("query-named-block-nodes flat",
                     lambda: engine.execute("query-named-block-nodes", {"flat": True}))
        timed("query-named-block-nodes", lambda: engine.execute("query-named-block-nodes"))
        names = {n["file"].rsplit("/", 1)[-1]: n["node-name"] for n in flat
                 if n["drv"] == "qcow2"}
        timed("block-stream of half the chain", lambda: _wait(engine, "block-stream", {
            "job-id": "s", "device": "top",
            "base-node": names[f"img{depth // 2}.qcow2"]}, "s", "null"))
        timed("block-commit of the rest", lambda: _wait(engine, "block-commit", {
            "job-id": "c", "device": "top",
            "top-node": names[f"img{depth // 2}.qcow2"]}, "c", "null"))
    return out


def run(report: Report) -> None:
    per_node: dict[int, dict[str, float]] = {}
    for _ in range(3):          # best of three, the depths alternating (a busy machine)
        for depth in DEPTHS:
            work = Path(tempfile.mkdtemp(prefix="bg-bench-depth-"))
            try:
                best = per_node.setdefault(depth, {})
                for what, seconds in _times(work, depth).items():
                    best[what] = min(best.get(what, seconds / depth), seconds / depth)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    shallow, deep = per_node[DEPTHS[0]], per_node[DEPTHS[1]]
    for what in deep:
        report.add(BENCH, f"{what}, per node at {DEPTHS[1]}", deep[what] * 1e6, "us",
                   anchor=shallow[what] * 1e6, anchor_name=f"per node at {DEPTHS[0]}",
                   target=TARGET)

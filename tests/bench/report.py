"""One table for every benchmark: each figure beside its anchor, as a ratio.

A timed row holds every run, ours and the anchor's: its figure is the median (the mean
for consecutive windows of one measurement) and its spread the smallest and largest
run, on both sides. :func:`alternate` takes the runs
of ours and of the anchor in turns (ours, anchor, ours, anchor, …), so both sides
sample the same stretch of time on a shared machine; one side measured in a quiet
moment and the other in a busy one would skew the ratio either way. A row without
runs is exact (a count, a size) or derived from other rows (a growth factor).

A row is *informative* when it sets part of our work beside the whole of QEMU's, or
QEMU's work beside a part of ours (a query alone, say): its ratio says where the time
goes, not who is faster at the same work.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: runs of each side per timed row (the median of at least five, with its spread);
#: BLOCKGRAPH_BENCH_RUNS lowers it for a quick try of the benchmarks' code, and the
#: report says how many runs its rows had
RUNS = int(os.environ.get("BLOCKGRAPH_BENCH_RUNS", "5"))


@dataclass
class Row:
    bench: str
    what: str
    ours: float
    anchor_name: str | None
    anchor: float | None
    unit: str
    #: True when a bigger number is better (throughput), False for times.
    higher_is_better: bool = False
    target: str = ""
    #: every run of ours and of the anchor (empty: an exact or derived figure)
    runs: list[float] = field(default_factory=list)
    anchor_runs: list[float] = field(default_factory=list)
    informative: bool = False
    #: the machine's 1-minute load average when the row was taken
    load: float = 0.0
    #: how the runs make the figure: "median", or "mean" for consecutive windows of one
    #: measurement (a rate over time, where the median would drop a periodic spike)
    summary: str = "median"

    @property
    def ratio(self) -> float | None:
        """How many times better we are than the anchor (>1 = better)."""
        if self.anchor is None or not self.ours or not self.anchor:
            return None
        return self.ours / self.anchor if self.higher_is_better else self.anchor / self.ours

    @property
    def spread(self) -> str:
        return _spread(self.runs)

    @property
    def anchor_spread(self) -> str:
        return _spread(self.anchor_runs)


def _spread(runs: list[float]) -> str:
    if not runs:
        return "exact"
    return f"{_fmt(min(runs))}–{_fmt(max(runs))}"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    load_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def add(self, bench: str, what: str, ours: float | Sequence[float], unit: str, *,
            anchor: float | Sequence[float] | None = None, anchor_name: str | None = None,
            higher_is_better: bool = False, target: str = "",
            informative: bool = False, summary: str = "median") -> Row:
        """One figure: a list of runs (its median is the figure) or an exact value.

        Without a measured anchor, a numeric target in the row's unit
        (``"< 16 ms"``, ``"<= 100x ..."``, ``"> 50 MiB/s"``) is the anchor, so every row
        has a ratio: how far inside (>1) or outside (<1) its target it is."""
        runs = [float(x) for x in ours] if isinstance(ours, Sequence) else []
        middle = statistics.mean if summary == "mean" else statistics.median
        value = middle(runs) if runs else float(ours)  # type: ignore[arg-type]
        anchor_runs: list[float] = []
        anchor_value: float | None
        if isinstance(anchor, Sequence):
            anchor_runs = [float(x) for x in anchor]
            anchor_value = statistics.median(anchor_runs)
        else:
            anchor_value = anchor
        if anchor_value is None:
            anchor_value = target_value(target, unit, higher_is_better)
            if anchor_value is not None:
                anchor_name = "target"
        row = Row(bench, what, value, anchor_name, anchor_value, unit, higher_is_better,
                  target, runs, anchor_runs, informative, round(os.getloadavg()[0], 2),
                  summary)
        self.rows.append(row)
        print(f"  {what}: {_fmt(value)} {unit} ({row.spread})"
              + (f" | {anchor_name}: {_fmt(anchor_value)} {unit} ({row.anchor_spread})"
                 if anchor_value is not None else "")
              + (f" | ratio {row.ratio:.2f}x" if row.ratio is not None else "")
              + (" | informative" if informative else ""), flush=True)
        return row

    def table(self) -> str:
        head = ("bench", "measure", "blockgraph", "spread", "anchor", "anchor value",
                "anchor spread", "unit", "ratio", "target")
        body = [
            (r.bench, r.what, _fmt(r.ours), r.spread, r.anchor_name or "-",
             _fmt(r.anchor) if r.anchor is not None else "-",
             r.anchor_spread if r.anchor_runs else "-", r.unit,
             f"{r.ratio:.2f}x" if r.ratio is not None else "-",
             "informative" if r.informative else r.target)
            for r in self.rows
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
                 for row in (head, *body)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        finished = time.time()
        return {
            "started": _iso(self.started),
            "seconds": round(finished - self.started, 1),
            "runs_per_row": RUNS,
            "load": {"start": list(self.load_at_start), "end": list(os.getloadavg())},
            "machine": machine(),
            "rows": [{**asdict(r), "ratio": r.ratio, "spread": r.spread,
                      "anchor_spread": r.anchor_spread if r.anchor_runs else None}
                     for r in self.rows],
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine() -> dict[str, Any]:
    """What the figures were taken on: CPU, cores, memory, kernel, disk, tools."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "virtual_machine": _first_line(["systemd-detect-virt", "--vm"]) or "none",
        "container": _first_line(["systemd-detect-virt", "--container"]) or "none",
        "temp_filesystem": _filesystem(tempfile.gettempdir()),
        "python": platform.python_version(),
        "qemu_img": _first_line(["qemu-img", "--version"]),
        "dot": _first_line(["dot", "-V"], stderr=True),
    }


def _first_line(cmd: list[str], stderr: bool = False) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stderr if stderr else out.stdout).strip()
    return text.splitlines()[0] if text else ""


def _filesystem(path: str) -> str:
    """The type and device of the mount holding ``path`` (longest mount point)."""
    best = ("", "")
    real = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, kind = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and \
                    len(mnt) >= len(best[0]):
                best = (mnt, f"{kind} on {dev}")
    return best[1]


_TARGET = re.compile(r"^\s*(<=?|>=?)\s*([\d][\d,]*(?:\.\d+)?)\s*([^\s(]*)")


def target_value(target: str, unit: str, higher_is_better: bool) -> float | None:
    """The number in a target like ``"< 1 ms at 1,000"`` when its unit is the row's."""
    m = _TARGET.match(target)
    if not m:
        return None
    op, number, its_unit = m.groups()
    if op.startswith("<") == higher_is_better or (its_unit and its_unit != unit):
        return None
    value = float(number.replace(",", ""))
    return value or None


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall-clock seconds of one call, and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def seconds(fn: Callable[[], object]) -> Callable[[], float]:
    """A run that times one call of ``fn`` (for :func:`alternate` and :func:`repeat`)."""
    return lambda: timed(fn)[0]


def repeat(run: Callable[[], float], runs: int = RUNS) -> list[float]:
    """``runs`` figures of one side (each call returns its own figure)."""
    return [run() for _ in range(runs)]


def alternate(ours: Callable[[], float], anchor: Callable[[], float],
              runs: int = RUNS) -> tuple[list[float], list[float]]:
    """``runs`` figures of each side, taken in turns: ours, anchor, ours, anchor, …"""
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        a.append(ours())
        b.append(anchor())
    return a, b

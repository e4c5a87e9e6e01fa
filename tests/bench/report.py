"""One table for every benchmark: each figure beside its anchor, as a ratio."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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

    @property
    def ratio(self) -> float | None:
        """How many times better we are than the anchor (>1 = better)."""
        if self.anchor is None or not self.ours or not self.anchor:
            return None
        return self.ours / self.anchor if self.higher_is_better else self.anchor / self.ours


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, bench: str, what: str, ours: float, unit: str, *, anchor: float | None = None,
            anchor_name: str | None = None, higher_is_better: bool = False,
            target: str = "") -> Row:
        """One figure. Without a measured anchor, a numeric target in the row's unit
        (``"< 16 ms"``, ``"<= 100x ..."``, ``"> 50 MiB/s"``) is the anchor, so every row
        has a ratio: how far inside (>1) or outside (<1) its target it is."""
        if anchor is None:
            anchor = target_value(target, unit, higher_is_better)
            if anchor is not None:
                anchor_name = "target"
        row = Row(bench, what, ours, anchor_name, anchor, unit, higher_is_better, target)
        self.rows.append(row)
        print(f"  {what}: {_fmt(ours)} {unit}"
              + (f" | {anchor_name}: {_fmt(anchor)} {unit}" if anchor is not None else "")
              + (f" | ratio {row.ratio:.2f}x" if row.ratio is not None else ""), flush=True)
        return row

    def table(self) -> str:
        head = ("bench", "measure", "blockgraph", "anchor", "anchor value", "unit", "ratio",
                "target")
        body = [
            (r.bench, r.what, _fmt(r.ours), r.anchor_name or "-",
             _fmt(r.anchor) if r.anchor is not None else "-", r.unit,
             f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.target)
            for r in self.rows
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
                 for row in (head, *body)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        data: list[dict[str, Any]] = [{**asdict(r), "ratio": r.ratio} for r in self.rows]
        path.write_text(json.dumps(data, indent=2) + "\n")


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


def best_of(n: int, fn: Callable[[], Any]) -> float:
    """The fastest of ``n`` calls, in seconds: the least noisy single figure."""
    return min(timed(fn)[0] for _ in range(n))

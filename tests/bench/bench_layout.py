"""Layout quality beside Graphviz ``dot`` on the same graphs.

For a host of 200 small chains, one base shared by 50 overlays, a 500-deep chain and
a 5,000-node host (VM chains over shared bases), both drawings are measured the same
way (:mod:`gui.views.layout.quality`): cards that overlap, links drawn through a card
they do not connect, points where links cross, the bounding box's width / height, and
the time to lay out. Ours is :func:`gui.views.layout.draw` (cards, packing, link
paths); dot's is ``dot -Tplain`` on the same graph with the same labelled boxes
(``tests/support/graphs.py``), its splines sampled into lines.

Times are the median of five runs of each, ours and dot's in turns; the counts and
shapes are exact (both drawings are deterministic).

Targets: 0 overlaps, 0 links through cards, crossings no
more than dot's, a bounding box between 1:3 and 3:1 for graphs of many parts, and
5,000 nodes laid out in under a second.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gui.views.layout import draw
from gui.views.layout import quality as q
from gui.views.layout.geometry import Point, Rect
from tests.bench.report import RUNS, Report, timed
from tests.support.graphs import deep_chain, host_of_chains, shared_base, to_dot, vm_farm

DOT_TIMEOUT = 180.0
GRAPHS = (
    ("host of 200 chains", lambda: host_of_chains(200), True),
    ("one base, 50 overlays", lambda: shared_base(50), False),
    ("a 500-deep chain", lambda: deep_chain(500), False),
    ("5,000 nodes", lambda: vm_farm(5000), True),
)


DotDrawing = tuple[float, dict[str, Rect], dict[tuple[str, str, str], list[Point]]]


def dot_drawing(dot_text: str) -> DotDrawing | None:
    """dot's time, node boxes and edge lines (points, y down), or None without dot."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "g.dot"
        src.write_text(dot_text)
        t0 = time.perf_counter()
        try:
            out = subprocess.run([dot, "-Tplain", str(src)], check=True, timeout=DOT_TIMEOUT,
                                 capture_output=True, text=True).stdout
        except subprocess.TimeoutExpired:
            return None
        seconds = time.perf_counter() - t0
    rects: dict[str, Rect] = {}
    paths: dict[tuple[str, str, str], list[Point]] = {}
    height = 0.0
    for line in out.splitlines():
        parts = shlex.split(line)
        if not parts:
            continue
        if parts[0] == "graph":
            height = float(parts[3]) * 72
        elif parts[0] == "node":
            x, y, w, h = (float(v) * 72 for v in parts[2:6])
            rects[parts[1]] = (x - w / 2, height - y - h / 2, w, h)
        elif parts[0] == "edge":
            tail, head, n = parts[1], parts[2], int(parts[3])
            pts = [(float(parts[4 + 2 * i]) * 72, height - float(parts[5 + 2 * i]) * 72)
                   for i in range(n)]
            label = parts[4 + 2 * n] if len(parts) > 6 + 2 * n else ""
            paths[(tail, label, head)] = q.sample_cubic(pts)
    return seconds, rects, paths


def run(report: Report) -> None:
    for name, build, many_parts in GRAPHS:
        snap = build()
        n = len(snap.nodes)
        dot_text = to_dot(snap)
        ours_runs: list[float] = []
        dot_runs: list[float] = []
        theirs: DotDrawing | None = None
        for _ in range(RUNS):       # ours and dot in turns
            ours_runs.append(timed(lambda s=snap: draw(s))[0] * 1000)
            once = dot_drawing(dot_text)
            if once is not None:
                dot_runs.append(once[0] * 1000)
                theirs = theirs or once
        ours = draw(snap)
        what = f"{name} ({n} nodes)"
        report.add("layout", f"{what}: time", ours_runs, "ms",
                   anchor=dot_runs if len(dot_runs) == RUNS else None,
                   anchor_name="dot -Tplain",
                   target="< 1000 ms at 5,000 nodes; 10x faster than dot")
        measures = [
            ("card overlaps", len(q.overlaps(ours.rects)),
             (lambda t: len(q.overlaps(t[1]))), "0"),
            ("links through cards", len(q.links_through_cards(ours.rects, ours.paths)),
             (lambda t: len(q.links_through_cards(t[1], t[2]))), "0"),
            ("crossings", q.crossings(ours.paths, ours.rects),
             (lambda t: q.crossings(t[2], t[1])), "no more than dot's"),
        ]
        for label, value, of_dot, target in measures:
            anchor = float(of_dot(theirs)) if theirs else None
            report.add("layout", f"{what}: {label}", float(value), "count",
                       anchor=anchor, anchor_name="dot" if theirs else None, target=target)
        # a shape, not a cost: dot's is named beside ours rather than made a ratio
        dot_shape = f"; dot: {q.aspect(theirs[1]):.3g}" if theirs else ""
        report.add("layout", f"{what}: bounding box width / height{dot_shape}",
                   q.aspect(ours.rects), "",
                   target="between 1/3 and 3" if many_parts else "(one part: no target)")

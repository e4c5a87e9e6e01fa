"""Byte ranges tagged with the layer whose data they hold, and how a chain resolves them.

A *run* is ``(start, end, origin)``: bytes ``[start, end)`` holding the data of the layer
``origin`` (None: zeros). :func:`resolve` gives what a reader of a chain gets, each range
from the first layer that allocates it, as ``qemu-img map`` reports the depth of each
range; :func:`origin_changes` counts what an edit changes. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

#: a run of a layer's (or a reader's) bytes and the layer whose data it holds (None: zeros)
Run = tuple[int, int, str | None]


def normal_runs(runs: Iterable[Run]) -> list[Run]:
    """Sorted, adjacent runs with the same origin merged, empty ones dropped."""
    out: list[Run] = []
    for s, e, tag in sorted(runs, key=lambda r: r[0]):
        if e <= s:
            continue
        if out and out[-1][1] == s and out[-1][2] == tag:
            out[-1] = (out[-1][0], e, tag)
        else:
            out.append((s, e, tag))
    return out


def laid_over(top: Sequence[Run], bottom: Sequence[Run]) -> list[Run]:
    """``top`` laid over ``bottom``: where both have a run, ``top``'s wins."""
    out: list[Run] = list(top)
    starts = [s for s, _, _ in top]
    for s, e, tag in bottom:
        pos = s
        i = max(0, bisect.bisect_right(starts, s) - 1)
        while pos < e:
            while i < len(top) and top[i][1] <= pos:
                i += 1
            if i >= len(top) or top[i][0] >= e:
                out.append((pos, e, tag))
                break
            ts, te, _ = top[i]
            if ts > pos:
                out.append((pos, ts, tag))
            pos = te
    return normal_runs(out)


def resolve(layers: Sequence[tuple[int, Sequence[Run]]], start: int, end: int) -> list[Run]:
    """What a reader of the chain ``layers`` (top first: size, runs) gets in [start, end):
    each range from the first layer that allocates it; past a layer's end, zeros."""
    out: list[Run] = []
    starts = [[r[0] for r in runs] for _, runs in layers]
    # (depth, start, end) still to resolve, in order
    todo: list[tuple[int, int, int]] = [(0, start, end)]
    while todo:
        depth, s, e = todo.pop(0)
        if s >= e:
            continue
        if depth >= len(layers):
            out.append((s, e, None))
            continue
        size, runs = layers[depth]
        inside = min(e, size)
        pending: list[tuple[int, int, int]] = []
        if s < inside:
            pos = s
            i = max(0, bisect.bisect_right(starts[depth], s) - 1)
            while i < len(runs) and runs[i][0] < inside:
                rs, re_, tag = runs[i]
                i += 1
                if re_ <= pos:
                    continue
                rs = max(rs, pos)
                re_ = min(re_, inside)
                if rs > pos:
                    pending.append((depth + 1, pos, rs))
                out.append((rs, re_, tag))
                pos = re_
            if pos < inside:
                pending.append((depth + 1, pos, inside))
        if inside < e:
            out.append((max(s, inside), e, None))
        todo = pending + todo
    return normal_runs(out)


def origin_changes(before: Sequence[Run], after: Sequence[Run]
          ) -> tuple[int, dict[str, int], dict[str | None, int]]:
    """Bytes whose origin differs, and how many by old and by new origin."""
    cuts = sorted({p for s, e, _ in (*before, *after) for p in (s, e)})
    changed = 0
    hidden: dict[str, int] = {}
    revealed: dict[str | None, int] = {}

    def tags(runs: Sequence[Run]) -> list[str | None]:
        out: list[str | None] = []
        i = 0
        for a in cuts[:-1]:
            while i < len(runs) and runs[i][1] <= a:
                i += 1
            out.append(runs[i][2] if i < len(runs) and runs[i][0] <= a else None)
        return out

    for a, b, old, new in zip(cuts[:-1], cuts[1:], tags(before), tags(after), strict=True):
        if old == new:
            continue
        n = b - a
        changed += n
        if old is not None:
            hidden[old] = hidden.get(old, 0) + n
        revealed[new] = revealed.get(new, 0) + n
    return changed, hidden, revealed

"""Where a node and everything below it read as zeros by allocation alone.

QEMU asks this of the chain below a request in two places: a zero write covering part
of a qcow2 cluster zeroes the whole cluster only when the rest reads as zeros, and
``quorum`` reports zeros only where every child's chain does.
"""

from __future__ import annotations

from engine.graph.io.base import NodeIO


def chain_zeroes(io: NodeIO | None, offset: int, length: int) -> list[tuple[int, int, bool]]:
    """``(start, length, reads as zeros)`` over ``[offset, offset+length)`` of ``io``
    and everything below it, by allocation alone, sorted: QEMU's block status above
    no base. Zero ranges, ranges no layer allocates, and ranges past a backing node's
    end are zeros; data is data whatever it holds. Walked with a work list (chains may
    be thousands deep)."""
    out: list[tuple[int, int, bool]] = []
    work: list[tuple[NodeIO | None, int, int]] = [(io, offset, length)]
    while work:
        cur, off, n = work.pop()
        if cur is None:
            out.append((off, n, True))
            continue
        cur.refresh()
        inside = max(0, min(n, cur.length() - off))
        if inside < n:
            out.append((off + inside, n - inside, True))
        if not inside:
            continue
        below = cur._bottom(off)[0].child_io("backing")
        for ext in cur.block_status(off, inside):
            if ext.state == "unallocated":
                work.append((below, ext.start, ext.length))
            else:
                out.append((ext.start, ext.length, ext.state == "zero"))
    out.sort()
    return out

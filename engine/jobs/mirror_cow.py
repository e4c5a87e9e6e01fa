"""Copy-on-write alignment of a mirror's copies, as QEMU 7.2's mirror does it
(``cow_bitmap``) for a target whose clusters are larger than the job's granularity
while the target's backing file (named in its header) is not opened.

A write of part of such a cluster would leave the rest of it to be read from a
backing file the target does not have yet; so the first copy into a cluster widens
to the whole target cluster, reading the rest from the source (``sync=top`` then
still reads the source's backing there). Once a cluster was copied, later copies
into it keep their own size.
"""

from __future__ import annotations

from engine.graph.model import Node


class CowAlignment:
    """Which target clusters a copy has filled yet, and how to widen a copy."""

    def __init__(self, cluster: int, granularity: int, length: int) -> None:
        self.cluster = cluster
        self.granularity = granularity
        self.length = length
        self._copied = bytearray(-(-length // granularity))

    def _is_copied(self, offset: int) -> bool:
        return bool(self._copied[offset // self.granularity])

    def widen(self, start: int, end: int) -> tuple[int, int]:
        """The range to copy for the dirty run ``[start, end)``: whole target clusters
        when its first or last chunk was never copied, clipped at the disk's end."""
        if self._is_copied(start) and self._is_copied(end - 1):
            return start, end
        c = self.cluster
        return start // c * c, min(-(-end // c) * c, self.length)

    def copied(self, start: int, end: int) -> None:
        """``[start, end)`` was written to the target."""
        g = self.granularity
        first, last = start // g, (end - 1) // g
        self._copied[first:last + 1] = b"\x01" * (last + 1 - first)


def cow_alignment(target: Node, granularity: int, length: int) -> CowAlignment | None:
    """The alignment the job needs: only for a target whose header names a backing file
    it has not opened, with clusters larger than the granularity (QEMU's condition)."""
    if not target.header_backing or target.child("backing") is not None:
        return None
    assert target.io is not None
    cluster = target.io.cluster_size() or 512
    if granularity >= cluster:
        return None
    return CowAlignment(cluster, granularity, length)

"""``compress``: a filter whose data writes reach its child as compressed writes.

QEMU aligns every request through the filter to its child's cluster size (the
filter's request alignment): a write that does not cover whole clusters is widened,
the head and tail read through the filter first, and the whole clusters are then
written compressed (:meth:`~engine.graph.io.base.NodeIO.write_compressed`). Reads,
zero writes and everything else pass through. The child must be a driver that can
write compressed data (QEMU checks at open, by the child's driver).
"""

from __future__ import annotations

from engine.graph.io.base import Node, NodeIO
from engine.graph.io.filters import FilterIO


class CompressIO(FilterIO):
    """The ``compress`` filter (see the module doc)."""

    @classmethod
    def child_error(cls, node: Node) -> str | None:
        link = node.children.get("file")
        if link is None:
            return None
        child = link.child
        if child.spec.compresses:
            return None
        return f"Compression is not supported for underlying format: {child.driver}"

    def write_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def _write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        below = self.passthrough()
        assert below is not None
        child = below[0]
        view = memoryview(data).cast("B")
        align = self.cluster_size() or 1
        length = self.length()
        start = offset - offset % align
        end = min(length, -(-(offset + len(view)) // align) * align)
        if start == offset and end == offset + len(view):
            child.write_compressed(offset, view)
            return
        buf = bytearray(end - start)
        whole = memoryview(buf)
        if start < offset:
            self.readinto(start, whole[:min(align, end - start)])
        tail = (end - 1) // align * align
        if end > offset + len(view) and not (tail == start and start < offset):
            self.readinto(tail, whole[tail - start:])
        whole[offset - start:offset - start + len(view)] = view
        child.write_compressed(start, whole)

"""``copy-on-read``: reads through the filter copy what they read into its child.

A read that reaches the child (the *top*, usually a qcow2 overlay) where the top does
not allocate the data itself copies it up, as QEMU's ``BDRV_REQ_COPY_ON_READ`` does:
the request is widened to whole clusters of the top; every run the top does not
allocate is read (from the top's backing chain) and written back into the top — as a
zero write when the whole run reads as zeros, as data otherwise — in pieces of at
most 16 MiB; runs the top allocates are read as they are.

With ``bottom``, only data that the backing chain allocates from the top's backing
down to ``bottom`` (included) is copied; what lies below ``bottom`` is read without
copying. The links from the filter down to ``bottom`` are frozen while it exists.

The ``copy-on-read`` filter that ``block-stream`` inserts is the same driver, but the
job copies by itself (its filter only passes reads on).
"""

from __future__ import annotations

from engine.formats.image import zero_fill
from engine.graph.io.base import Node, NodeIO, Pending
from engine.graph.io.filters import FilterIO

#: QEMU's bounce buffer limit for one copied run
MAX_BOUNCE = 16 << 20


def is_allocated(io: NodeIO, offset: int, length: int) -> tuple[bool, int]:
    """QEMU's bdrv_is_allocated: whether ``io``'s own layer allocates ``offset`` (data
    or zero) and for how many bytes (0 at or past the node's end)."""
    limit = min(offset + length, io.length())
    if limit <= offset:
        return False, 0
    first = io.block_status(offset, limit - offset)[0]
    return first.state != "unallocated", min(first.start + first.length, limit) - offset


def is_allocated_above(layers: list[NodeIO], offset: int, length: int) -> tuple[bool, int]:
    """QEMU's bdrv_is_allocated_above over ``layers`` (top first, the base included):
    the first layer that allocates decides; an unallocated one narrows the run."""
    n = length
    for io in layers:
        allocated, run = is_allocated(io, offset, n)
        if allocated:
            return True, run
        if run:
            n = min(n, run)
    return False, n


def _skip_filters(node: Node | None) -> Node | None:
    while node is not None and node.spec.is_filter:
        link = node.children.get(node.spec.filtered_role or "file")
        node = link.child if link is not None else None
    return node


def _filter_or_cow(node: Node) -> Node | None:
    link = node.children.get(node.spec.filtered_role or "backing")
    return link.child if link is not None else None


class CopyOnReadIO(FilterIO):
    """The ``copy-on-read`` filter (see the module doc)."""

    copying = True

    def resolve(self) -> None:
        # the stream job's filter leaves the copying to the job
        self.copying = not any(getattr(link.parent, "job_type", None) == "stream"
                               for link in self.node.parents)

    def read_passthrough(self) -> tuple[NodeIO, int] | None:
        return None if self.copying else self.passthrough()

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        top = self._top()
        inside = max(0, min(len(view), top.length() - offset))
        if inside < len(view):
            zero_fill(view[inside:])
        view = view[:inside]
        bottom = self.node.options.get("bottom")
        if bottom is None:
            self._copy_on_read(top, offset, view)
            return []
        layers = self._layers_to(bottom)
        done = 0
        while done < len(view):
            pos, rest = offset + done, len(view) - done
            in_top, n = is_allocated(top, pos, rest)
            if not in_top:
                below, n = is_allocated_above(layers, pos, n)
                if n == 0:          # past the end of the backing chain
                    zero_fill(view[done:])
                    break
                if below:
                    self._copy_on_read(top, pos, view[done:done + n])
                    done += n
                    continue
            top.readinto(pos, view[done:done + n])
            done += n
        return []

    def _top(self) -> NodeIO:
        below = self.passthrough()
        assert below is not None
        return below[0]

    def _layers_to(self, bottom: str) -> list[NodeIO]:
        """The layers from the top's backing (filters skipped) down to ``bottom``."""
        top = _skip_filters(self.node.file)
        current = _skip_filters(top.backing) if top is not None else None
        layers: list[NodeIO] = []
        while current is not None:
            if not current.spec.is_filter and current.io is not None:
                layers.append(current.io)
            if current.name == bottom:
                break
            current = _filter_or_cow(current)
        return layers

    @staticmethod
    def _copy_on_read(top: NodeIO, offset: int, view: memoryview) -> None:
        """A read of ``top`` that copies what the top does not allocate into it."""
        allocated, n = is_allocated(top, offset, len(view))
        if allocated and n == len(view):
            top.readinto(offset, view)
            return
        cluster = top.cluster_size() or 1
        start = offset - offset % cluster
        end = min(-(-(offset + len(view)) // cluster) * cluster, top.length())
        pos = start
        while pos < end:
            allocated, n = is_allocated(top, pos, end - pos)
            if n == 0:
                break
            lo, hi = max(pos, offset), min(pos + n, offset + len(view))
            if allocated:
                if lo < hi:
                    top.readinto(lo, view[lo - offset:hi - offset])
                pos += n
                continue
            n = min(n, MAX_BOUNCE)
            buf = bytearray(n)
            top.readinto(pos, memoryview(buf))
            if buf.count(0) == n:
                top.write_zeroes(pos, n)
            else:
                top.write(pos, buf)
            hi = min(pos + n, offset + len(view))
            if lo < hi:
                view[lo - offset:hi - offset] = buf[lo - pos:hi - pos]
            pos += n

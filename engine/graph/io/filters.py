"""Filter drivers: one child, every request passed through to it.

The job filters QEMU inserts (``commit_top`` and ``mirror_top`` for commit) are of
this kind; the filters a user adds build on it in modules of their own
(:mod:`~engine.graph.io.throttle`, :mod:`~engine.graph.io.copy_on_read`).
"""

from __future__ import annotations

import errno

from engine.graph.io.base import NodeIO


class FilterIO(NodeIO):
    """Passes every request to the child in :attr:`role`."""

    role = "file"
    clamps = False       # the child has the same length and cuts reads itself

    def passthrough(self) -> tuple[NodeIO, int] | None:
        link = self.node.children.get(self.role)
        if link is None or link.child.io is None:
            raise OSError(errno.ENOMEDIUM, "No medium found")
        return link.child.io, 0

    def compressed_passthrough(self) -> tuple[NodeIO, int] | None:
        # the filters that forward compressed writes say so in the driver table
        return self.passthrough() if self.node.spec.compresses else None

    def _truncate_through(self, size: int) -> tuple[NodeIO, int] | None:
        below = self.passthrough()
        assert below is not None
        return below[0], size


class BackingFilterIO(FilterIO):
    """``commit_top`` / ``mirror_top``: commit's filters, whose child is a ``backing`` link."""

    role = "backing"


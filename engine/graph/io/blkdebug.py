"""``blkdebug``: a filter over its ``image`` child that fails and suspends requests.

Requests pass through to ``image`` unless a rule fails them
(:mod:`engine.graph.blkdebug` holds the rules). The events the rules wait for are
fired by the format driver above the node, as QEMU's formats fire them on their
``file`` child: ``read_aio`` before a guest-data read, ``write_aio`` before a
guest-data write (a ``raw`` parent's every request is guest data; a ``qcow2``
parent's metadata goes through :meth:`BlkdebugStore.pread` and ``pwrite`` and fires
nothing). A node with no format parent receives no events.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from engine.formats.store import ByteStore
from engine.graph.blkdebug import BlkdebugError, BlkdebugState, build_state, check_limits
from engine.graph.io.base import IOContext, Node, NodeIO, NodeStore, Pending
from engine.graph.io.filters import FilterIO


class BlkdebugIO(FilterIO):
    """The ``blkdebug`` filter (see the module doc)."""

    role = "image"
    hooks_requests = True

    def __init__(self, node: Node, ctx: IOContext) -> None:
        super().__init__(node, ctx)
        self.rules: BlkdebugState = build_state(node.options, ctx.lock)
        self._quiet = threading.local()
        self._fires = False

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        try:
            check_limits(options)
        except BlkdebugError as exc:
            return str(exc)
        return None

    def resolve(self) -> None:
        self._fires = any(link.role == "file" and link.parent.spec.is_format
                          for link in self.node.parents)

    def _event(self, name: str) -> None:
        if self._fires and not getattr(self._quiet, "depth", 0):
            self.rules.event(name)

    def _fail(self, iotype: str, offset: int, length: int) -> None:
        err = self.rules.check(iotype, offset, length)
        if err:
            raise OSError(err, os.strerror(err))

    # -- requests ----------------------------------------------------------------------
    def read_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        self._event("read_aio")
        self._fail("read", offset, len(view))
        below = self.passthrough()
        assert below is not None
        return [(below[0], offset + below[1], view)]

    def _on_request(self, iotype: str, offset: int, length: int) -> None:
        if iotype == "write":
            self._event("write_aio")
        self._fail(iotype, offset, length)

    def _flush_own(self) -> None:
        self._fail("flush", 0, 0)

    def store(self) -> ByteStore:
        return BlkdebugStore(self)

    def quiet(self) -> _Quiet:
        """Requests made inside fire no events (a format's metadata I/O)."""
        return _Quiet(self._quiet)

    def close(self) -> None:
        self.rules.resume_all()


class _Quiet:
    def __init__(self, local: threading.local) -> None:
        self._local = local

    def __enter__(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1


class BlkdebugStore(NodeStore):
    """The node as a qcow2 parent's file: vectored I/O is guest data (fires events),
    single-buffer I/O is metadata (fires none)."""

    io: BlkdebugIO

    def pread(self, length: int, offset: int) -> bytes:
        with self.io.quiet():
            return super().pread(length, offset)

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        with self.io.quiet():
            return super().pwrite(data, offset)

    def pwritev(self, buffers: Any, offset: int) -> int:
        data = b"".join(bytes(b) for b in buffers)
        if not data:
            return 0
        self.io.write(offset, data)
        return len(data)

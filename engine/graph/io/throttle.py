"""``throttle``: a filter that is a member of a ``throttle-group`` object."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.graph.io.base import Node, NodeIO, Pending
from engine.graph.io.context import IOContext
from engine.graph.io.filters import FilterIO
from engine.graph.throttle import ThrottleGroup
from engine.graph.throttle_queue import GroupQueue, Member


class ThrottleIO(FilterIO):
    """``throttle``: a member of the ``throttle-group`` its options name.

    The group must exist when the node opens and when a reopen names it. Every read,
    write and zero write waits for the group's budget (see
    :mod:`engine.graph.throttle_queue`) before it passes to the child, as QEMU's filter
    does; flushes pass at once. A reopen to another group moves the node's membership
    with the next request."""

    hooks_requests = True

    def __init__(self, node: Node, ctx: IOContext) -> None:
        super().__init__(node, ctx)
        self._member = Member(node.name)
        self._group: ThrottleGroup | None = None
        self._queue()

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        group = options.get("throttle-group")
        if group is None:
            return "Please specify a throttle group"
        if group not in ctx.throttle_groups:
            return f"Throttle group '{group}' does not exist"
        return None

    def _queue(self) -> GroupQueue | None:
        """The queue of the group the node's options name now (joining it if new)."""
        group = self.ctx.throttle_groups.get(self.node.options.get("throttle-group", ""))
        if group is not self._group:
            self._leave()
            if group is not None:
                if group.queue is None:
                    group.queue = GroupQueue(group, self.ctx.clock, self.ctx.lock)
                group.queue.register(self._member)
            self._group = group
        return group.queue if group is not None else None

    def _leave(self) -> None:
        if self._group is not None and self._group.queue is not None:
            self._group.queue.unregister(self._member)
            self._member = Member(self.node.name)
        self._group = None

    def _throttle(self, size: int, is_write: bool) -> None:
        queue = self._queue()
        if queue is not None and queue.budget.enabled():
            queue.intercept(self._member, size, is_write)

    def queued(self, is_write: bool) -> int:
        """This node's requests waiting for the budget (for tests and views)."""
        queue = self._queue()
        return queue.queued(self._member, is_write) if queue is not None else 0

    # -- requests ----------------------------------------------------------------------
    def read_passthrough(self) -> tuple[NodeIO, int] | None:
        return None

    def _read_layer(self, offset: int, view: memoryview) -> list[Pending]:
        self._throttle(len(view), False)
        below = self.passthrough()
        assert below is not None
        return [(below[0], offset + below[1], view)]

    def _on_request(self, iotype: str, offset: int, length: int) -> None:
        self._throttle(length, True)

    def release(self) -> None:
        """Let this node's queued requests go now (the node is drained)."""
        if self._group is not None and self._group.queue is not None:
            self._group.queue.release(self._member)

    def close(self) -> None:
        self._leave()


def release_drained(nodes: Mapping[str, Node]) -> Callable[[frozenset[str], bool], None]:
    """A drain listener for the graph: the ``throttle`` nodes a graph change drains let
    their queued requests go (QEMU's drain restarts a throttle node's queues)."""
    def listener(names: frozenset[str], begin: bool) -> None:
        if not begin:
            return
        for name in names:
            node = nodes.get(name)
            if node is not None and isinstance(node.io, ThrottleIO):
                node.io.release()
    return listener

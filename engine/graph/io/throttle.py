"""``throttle``: a filter that is a member of a ``throttle-group`` object."""

from __future__ import annotations

from typing import Any

from engine.graph.io.base import IOContext
from engine.graph.io.filters import FilterIO


class ThrottleIO(FilterIO):
    """``throttle``: a member of the ``throttle-group`` its options name.

    The group must exist when the node opens and when a reopen names it. Requests pass
    through undelayed (see :mod:`engine.graph.throttle`)."""

    @staticmethod
    def option_error(ctx: IOContext, options: dict[str, Any]) -> str | None:
        group = options.get("throttle-group")
        if group is None:
            return "Please specify a throttle group"
        if group not in ctx.throttle_groups:
            return f"Throttle group '{group}' does not exist"
        return None

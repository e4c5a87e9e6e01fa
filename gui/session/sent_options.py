"""The options this client gave the nodes it added or reopened, by node-name.

QEMU's queries do not report every option a node was opened with (cache modes,
``discard``, inline children's names…), and ``blockdev-reopen`` resets whatever it is
not given; so the session keeps what it sent, and the planner repeats it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


class SentOptions:
    """Newest ``blockdev-add`` / ``blockdev-reopen`` options per node; dropped on delete."""

    def __init__(self) -> None:
        self._options: dict[str, dict[str, Any]] = {}

    @property
    def by_node(self) -> Mapping[str, Mapping[str, Any]]:
        return self._options

    def record(self, command: str, arguments: Mapping[str, Any]) -> None:
        """Take note of a command that succeeded."""
        if command == "blockdev-add" and isinstance(arguments.get("node-name"), str):
            self._options[arguments["node-name"]] = copy.deepcopy(dict(arguments))
        elif command == "blockdev-reopen":
            for opts in arguments.get("options", []):
                if isinstance(opts.get("node-name"), str):
                    self._options[opts["node-name"]] = copy.deepcopy(dict(opts))
        elif command == "x-blockdev-reopen" and isinstance(arguments.get("node-name"), str):
            self._options[arguments["node-name"]] = copy.deepcopy(dict(arguments))
        elif command == "blockdev-del":
            self._options.pop(str(arguments.get("node-name")), None)

"""What a plan depends on besides the intent: the graph and what is known of the peer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.graph.rules import Device
from engine.graph.snapshot import GraphSnapshot


@dataclass(frozen=True, slots=True)
class PlanContext:
    """Everything a plan depends on: the graph and what the session knows about the peer."""

    snapshot: GraphSnapshot
    reopen_command: str = "blockdev-reopen"
    #: node-name -> options this client sent for it (blockdev-add / blockdev-reopen)
    known_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the peer's commands (``query-commands``); empty means "not known, assume QEMU 7.2"
    commands: frozenset[str] = frozenset()
    #: the peer's devices with block backends (``query-block``), by device id; None when
    #: not read (media edits are then checked against the graph alone)
    devices: Mapping[str, Device] | None = None

"""Intents: what the user asked for, as data (a gesture or a menu action becomes one).

Names are node-names (the keys of a GraphSnapshot's block nodes). Job ids are derived
from node names unless given, so planning stays a pure function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SetBacking:
    """Re-point ``node``'s backing link to ``backing`` (a drag of the backing edge)."""

    node: str
    backing: str


@dataclass(frozen=True, slots=True)
class DetachBacking:
    """Drop ``node``'s backing link (the edge released on empty space)."""

    node: str


@dataclass(frozen=True, slots=True)
class SetReadOnly:
    node: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class ExternalSnapshot:
    """Create ``filename`` as a qcow2 overlay of ``node`` and make it the active layer."""

    node: str
    overlay: str
    filename: str
    file_node: str | None = None     # default: overlay + "-file"
    cluster_size: int | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    """Copy the data below ``node`` down to ``base`` into ``node``; None streams everything."""

    node: str
    base: str | None = None
    job_id: str | None = None
    speed: int = 0          # bytes per second, 0: unlimited


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit ``top`` (and everything between) into ``base`` (None: the bottom of the chain).

    When ``top`` is the active layer this is an active commit, completed by the plan.
    """

    top: str
    base: str | None = None
    job_id: str | None = None
    speed: int = 0          # bytes per second, 0: unlimited


@dataclass(frozen=True, slots=True)
class Delete:
    """``blockdev-del`` ``node``, and the nodes the monitor owns that only it used."""

    node: str


@dataclass(frozen=True, slots=True)
class AddImage:
    """Open an existing image file as node ``node_name``, with or without its chain.

    ``backing`` names a node already open to back it (by reference), instead of the
    chain its header names; ``file_node`` names its protocol node (else auto-named).
    """

    node_name: str
    filename: str
    format: str = "qcow2"
    with_chain: bool = True
    read_only: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)   # cache, discard, ...
    file_node: str | None = None
    backing: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeMedium:
    """Insert ``filename`` into removable device ``device``; ``filename`` None ejects."""

    device: str
    filename: str | None = None
    format: str = "raw"
    read_only_mode: str | None = None   # retain | read-only | read-write
    force: bool = False


@dataclass(frozen=True, slots=True)
class OpenTray:
    """Open ``device``'s tray (``force``: even when the guest locked it)."""

    device: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class CloseTray:
    device: str


@dataclass(frozen=True, slots=True)
class RemoveMedium:
    """Take the medium out of ``device`` (its tray must be open); the nodes stay."""

    device: str


@dataclass(frozen=True, slots=True)
class InsertMedium:
    """Put node ``node`` into ``device`` as its medium (its tray must be open and empty)."""

    device: str
    node: str


Intent = (SetBacking | DetachBacking | SetReadOnly | ExternalSnapshot | Stream | Commit | Delete
          | AddImage | ChangeMedium | OpenTray | CloseTray | RemoveMedium | InsertMedium)

#: Intents on a device's removable medium (they need the devices of ``query-block``).
MEDIA_INTENTS = (ChangeMedium, OpenTray, CloseTray, RemoveMedium, InsertMedium)

#: Intents that only change links or flags, so they stage into one blockdev-reopen.
LINK_INTENTS = (SetBacking, DetachBacking, SetReadOnly)

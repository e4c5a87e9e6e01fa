"""What the peer supports, found by asking it (``query-version``, ``query-commands``).

Nothing above the wire knows whether the peer is the bundled engine, a
qemu-storage-daemon or a qemu-system; differences are capabilities:
``blockdev-reopen`` (6.1+) vs ``x-blockdev-reopen`` (4.0–6.0), whether the cheap
``x-debug-query-block-graph`` exists, whether the peer has removable devices
(``blockdev-change-medium``, qemu-system only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PeerCapabilities:
    version: tuple[int, int, int]
    package: str
    commands: frozenset[str]

    @classmethod
    def from_replies(
        cls, version_reply: Mapping[str, Any], commands_reply: Iterable[Mapping[str, Any]]
    ) -> PeerCapabilities:
        qemu = version_reply.get("qemu", {})
        version = (int(qemu.get("major", 0)), int(qemu.get("minor", 0)), int(qemu.get("micro", 0)))
        names = frozenset(str(c["name"]) for c in commands_reply)
        return cls(version, str(version_reply.get("package", "")), names)

    def has(self, command: str) -> bool:
        return command in self.commands

    @property
    def reopen_command(self) -> str | None:
        """``blockdev-reopen`` (list form) or ``x-blockdev-reopen`` (one node); None if neither."""
        if "blockdev-reopen" in self.commands:
            return "blockdev-reopen"
        if "x-blockdev-reopen" in self.commands:
            return "x-blockdev-reopen"
        return None

    @property
    def has_debug_graph(self) -> bool:
        return "x-debug-query-block-graph" in self.commands

    @property
    def has_removable_media(self) -> bool:
        return "blockdev-change-medium" in self.commands

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) + (f" ({self.package})" if self.package else "")

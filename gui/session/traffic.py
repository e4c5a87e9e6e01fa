"""The QMP traffic log: every message sent and received, bounded, newest last.

Entries keep the message as the parsed JSON object and render it on demand, so logging a
1,000-node query reply costs a reference, not a dump. ``background`` marks the session's
own refresh queries (polls, re-reads after events) so a log view can hide them.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["sent", "received"]


@dataclass(frozen=True, slots=True)
class TrafficEntry:
    """One QMP message. ``kind``: greeting, command, reply, error, event."""

    seq: int
    direction: Direction
    time: float
    kind: str
    message: Mapping[str, Any] = field(compare=False)
    background: bool = False

    @property
    def json(self) -> str:
        return json.dumps(self.message)

    @property
    def summary(self) -> str:
        """A short label: the command name, the event name, or ok/error."""
        msg = self.message
        if "execute" in msg:
            return str(msg["execute"])
        if "event" in msg:
            return str(msg["event"])
        if "error" in msg:
            return f"error: {msg['error'].get('desc', '')}"
        if "QMP" in msg:
            return "greeting"
        return "ok"


def classify(message: Mapping[str, Any]) -> str:
    if "execute" in message or "exec-oob" in message:
        return "command"
    if "event" in message:
        return "event"
    if "error" in message:
        return "error"
    if "QMP" in message:
        return "greeting"
    return "reply"


class TrafficLog:
    """A bounded, append-only record of QMP messages (oldest dropped first)."""

    def __init__(self, limit: int = 5000) -> None:
        self._entries: deque[TrafficEntry] = deque(maxlen=limit)
        self._seq = 0

    def record(
        self, direction: Direction, message: Mapping[str, Any], *, background: bool = False
    ) -> TrafficEntry:
        self._seq += 1
        entry = TrafficEntry(
            self._seq, direction, time.time(), classify(message), message, background
        )
        self._entries.append(entry)
        return entry

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int) -> list[TrafficEntry]:
        """Entries recorded after sequence number ``seq`` (still in the log)."""
        return [e for e in self._entries if e.seq > seq]

    def sent_commands(self, since: int = 0) -> list[str]:
        return [
            str(e.message.get("execute"))
            for e in self._entries
            if e.seq > since and e.direction == "sent" and e.kind == "command"
        ]

    def __iter__(self) -> Iterator[TrafficEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

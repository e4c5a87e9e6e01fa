"""Where a session's connection stands, as its observers are told.

DISCONNECTED → CONNECTING → CONNECTED; a dropped link gives LOST (the outcome of any
command in flight is unknown); ``close()`` gives CLOSED. Each state carries the peer's
capabilities once known, for the status bar.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gui.session.capabilities import PeerCapabilities


class ConnectionStatus(enum.Enum):
    DISCONNECTED = "disconnected"   # never connected, or closed the old connection on request
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"                   # dropped by the peer: outcome of in-flight commands unknown
    CLOSED = "closed"               # close() was called; the session is finished


@dataclass(frozen=True, slots=True)
class ConnectionState:
    status: ConnectionStatus
    address: str
    message: str = ""
    peer: PeerCapabilities | None = None

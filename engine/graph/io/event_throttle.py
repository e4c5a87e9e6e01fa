"""The hold QEMU's monitor puts on events a guest can trigger at will.

QEMU 7.2 sends ``QUORUM_REPORT_BAD`` (per node name) and ``QUORUM_FAILURE`` (one for
all) at most once a second: the first goes out at once and opens a one-second hold;
what arrives during the hold is kept, each new one replacing the last, and sent when
the hold ends, which opens another hold; a hold that ends with nothing kept closes.
Other events pass straight through. The engine's driver events go through one
:class:`EventThrottle` per graph, so a client sees what a QEMU monitor would send.

A held event carries the time it was sent, not the time it happened (QEMU stamps it
when it happened); what arrives, and in which order, is QEMU's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

#: seconds between two events of one kind (QEMU's monitor_qapi_event_conf)
RATES = {"QUORUM_REPORT_BAD": 1.0, "QUORUM_FAILURE": 1.0}

Emit = Callable[[str, dict[str, Any]], object]


def _key(event: str, data: dict[str, Any]) -> Hashable:
    """Events of one key share a hold: ``QUORUM_REPORT_BAD`` is held per node."""
    if event == "QUORUM_REPORT_BAD":
        return event, data.get("node-name")
    return event


class _Hold:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.kept: tuple[str, dict[str, Any], Emit] | None = None
        self.timer: threading.Timer | None = None


class EventThrottle:
    """Sends events through ``emit``, holding the throttled kinds as QEMU does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: dict[Hashable, _Hold] = {}

    def send(self, event: str, data: dict[str, Any], emit: Emit) -> None:
        rate = RATES.get(event)
        if rate is None:
            emit(event, data)
            return
        key = _key(event, data)
        with self._lock:
            hold = self._holds.get(key)
            if hold is not None:
                hold.kept = (event, data, emit)
                return
            hold = self._holds[key] = _Hold(rate)
            self._arm(key, hold)
        emit(event, data)

    def _arm(self, key: Hashable, hold: _Hold) -> None:
        timer = threading.Timer(hold.rate, self._hold_ends, (key,))
        timer.daemon = True
        hold.timer = timer
        timer.start()

    def _hold_ends(self, key: Hashable) -> None:
        with self._lock:
            hold = self._holds.get(key)
            if hold is None:
                return
            kept, hold.kept = hold.kept, None
            if kept is None:
                del self._holds[key]
                return
            self._arm(key, hold)
        event, data, emit = kept
        emit(event, data)

    def cancel(self) -> None:
        """Drop what is held (the process ends: QEMU sends nothing more either)."""
        with self._lock:
            holds, self._holds = self._holds, {}
        for hold in holds.values():
            if hold.timer is not None:
                hold.timer.cancel()

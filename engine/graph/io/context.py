"""What every node's I/O shares with its graph (:class:`IOContext`)."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import Any

from engine.clock import Clock, RealClock
from engine.graph.faults import FaultInjector
from engine.graph.io.event_throttle import EventThrottle
from engine.graph.throttle import ThrottleGroup


class IOContext:
    """What every node's I/O shares with its graph.

    ``epoch`` grows by one with every change of a child link: I/O objects cache the
    children they resolved and look again when it moved. ``lock`` is held by every
    graph transaction and around every job request, so a request never sees half a
    graph change (QEMU drains the nodes a reopen touches). ``faults``: the engine's
    injected I/O errors (its ``blkdebug``). ``throttle_groups``: the ``throttle-group``
    objects by id, which ``throttle`` nodes name. ``emit``: how a driver sends a QMP
    event (``quorum``'s reports, through ``event_throttle``, which holds them as QEMU's
    monitor does). ``clock``: the time throttle groups budget by (tests set one).
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.lock = threading.RLock()
        self.faults = FaultInjector()
        self.throttle_groups: dict[str, ThrottleGroup] = {}
        self.clock: Clock = RealClock()
        self.emit: Callable[[str, dict[str, Any]], object] = lambda event, data: None
        self.event_throttle = EventThrottle()

    def changed(self) -> None:
        self.epoch += 1

    @staticmethod
    def fatal(message: str) -> None:
        """Where QEMU quits the process (``blkverify`` on a mismatch): the engine fails
        the request with EIO; a host that stands in for QEMU replaces this to quit."""
        raise OSError(errno.EIO, message)

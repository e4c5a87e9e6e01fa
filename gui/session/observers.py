"""A tiny observer list: the session's callbacks, which the GUI bridges to Qt signals.

A callback that raises is logged and dropped from nothing — one broken view must not
stop the session from reporting to the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Observers(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[T], None]] = []

    def add(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Register ``callback``; returns a function that unregisters it."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def emit(self, value: T) -> None:
        for cb in list(self._callbacks):
            try:
                cb(value)
            except Exception:
                log.exception("%s observer %r failed", self.name, cb)

"""The one QMP client: ``qemu.qmp.QMPClient`` plus a traffic-log hook.

qemu.qmp calls ``_cb_outbound``/``_cb_inbound`` for every message it writes and reads,
including the greeting and capabilities negotiation; those documented subclass hooks
feed the traffic log. Whether a message belongs to a background query is decided from
its ``id``: ids are handed out in the caller's task (``_get_exec_id``), where the
``background`` context variable is visible, and remembered until the reply arrives.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from qemu.qmp import QMPClient
from qemu.qmp.message import Message

from gui.session.traffic import Direction, TrafficEntry, TrafficLog

_background: contextvars.ContextVar[bool] = contextvars.ContextVar("_background", default=False)


@contextlib.contextmanager
def background_traffic() -> Iterator[None]:
    """Mark commands issued inside this block (in this task) as background traffic."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


class LoggingQMPClient(QMPClient):
    """A QMPClient that records every message in a :class:`TrafficLog`."""

    def __init__(
        self,
        traffic: TrafficLog,
        on_entry: Callable[[TrafficEntry], None],
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self._traffic = traffic
        self._on_entry = on_entry
        self._background_ids: set[str] = set()

    def _get_exec_id(self) -> str:
        exec_id = super()._get_exec_id()
        if _background.get():
            self._background_ids.add(exec_id)
        return exec_id

    def _log(self, direction: Direction, msg: Message) -> None:
        data: Mapping[str, Any] = dict(msg)
        msg_id = data.get("id")
        background = isinstance(msg_id, str) and msg_id in self._background_ids
        if background and direction == "received":
            self._background_ids.discard(msg_id)  # type: ignore[arg-type]
        entry = self._traffic.record(direction, data, background=background)
        self._on_entry(entry)

    def _cb_outbound(self, msg: Message) -> Message:
        msg = super()._cb_outbound(msg)
        self._log("sent", msg)
        return msg

    def _cb_inbound(self, msg: Message) -> Message:
        msg = super()._cb_inbound(msg)
        self._log("received", msg)
        return msg

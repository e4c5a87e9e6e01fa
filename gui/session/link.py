"""One QMP connection: the greeting and each command under a time limit, errors made plain.

A :class:`QmpLink` is one ``qemu.qmp`` client connected to one peer, from the greeting
to the hang-up. It does not reconnect and does not know about graphs: the session opens
a new link when it reconnects. What it adds to the client is what a desktop tool needs
from a peer that may misbehave: a peer that accepts but never greets, or stops
answering, is given up after a time limit; every failure is one of the session's errors
(:mod:`gui.session.errors`), never a ``qemu.qmp`` exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from qemu.qmp import ConnectError, ExecInterruptedError, QMPClient, Runstate
from qemu.qmp.protocol import StateError
from qemu.qmp.qmp_client import ExecuteError

from gui.session.address import Endpoint
from gui.session.client import LoggingQMPClient
from gui.session.errors import CommandFailed, ConnectFailed, Disconnected
from gui.session.traffic import TrafficEntry, TrafficLog

#: What may go wrong on a link once it is up: the session treats all of them as a loss.
LINK_ERRORS = (ExecInterruptedError, StateError)


class Stalled(Disconnected):
    """No reply within the time limit: replies come in order, so the link is useless now."""


class QmpLink:
    """A connected QMP client (see the module docstring)."""

    def __init__(self, client: LoggingQMPClient) -> None:
        self.client = client

    @classmethod
    async def open(cls, endpoint: Endpoint, traffic: TrafficLog,
                   on_entry: Callable[[TrafficEntry], None],
                   timeout: float | None) -> QmpLink:
        """Connect and negotiate; raises ConnectFailed with the reason (greeting included)."""
        client = LoggingQMPClient(traffic, on_entry, name="blockgraph")
        timer = asyncio.timeout(timeout)
        try:
            async with timer:
                await client.connect(endpoint.connect_argument())
        except (ConnectError, OSError) as exc:   # TimeoutError is an OSError
            if timer.expired():   # qemu.qmp reports the cancelled handshake as ConnectError
                with contextlib.suppress(Exception):
                    await client.disconnect()
                reason = f"no QMP greeting within {timeout:g} s"
            elif isinstance(exc, ConnectError):
                reason = str(exc.exc) or f"{exc.error_message} ({type(exc.exc).__name__})"
            else:
                reason = str(exc)
            raise ConnectFailed(endpoint.label, reason) from exc
        return cls(client)

    @property
    def running(self) -> bool:
        return self.client.runstate is Runstate.RUNNING

    async def send(self, command: str, arguments: Mapping[str, Any] | None,
                   timeout: float | None) -> Any:
        """Send one command and return its ``return`` value.

        Raises CommandFailed (QMP error), Stalled (no reply within ``timeout``: the
        outcome is unknown) or Disconnected (the link went away mid-command).
        """
        if not self.running:
            raise Disconnected("not connected")
        msg = QMPClient.make_execute_msg(command, arguments)
        try:
            async with asyncio.timeout(timeout):
                return await self.client.execute_msg(msg)
        except ExecuteError as exc:
            raise CommandFailed(dict(exc.sent), dict(exc.received)) from None
        except TimeoutError as exc:   # (an OSError too: this clause must come first)
            raise Stalled(f"no reply to {command} within {timeout:g} s — outcome unknown",
                          outcome_unknown=True) from exc
        except (ExecInterruptedError, StateError, EOFError, OSError) as exc:
            raise Disconnected(f"connection lost during {command} — outcome unknown",
                               outcome_unknown=True) from exc

    async def hung_up(self) -> None:
        """Return once the peer has hung up (qemu.qmp leaves RUNNING on EOF)."""
        while self.client.runstate is Runstate.RUNNING:
            await self.client.runstate_changed()

    async def close(self) -> None:
        """Disconnect; the errors of a link that is already dead are expected and dropped."""
        with contextlib.suppress(Exception):
            await self.client.disconnect()

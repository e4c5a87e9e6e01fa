"""The session's error tree: one root, so callers can catch everything the session raises.

``SessionError`` is the root. ``CommandFailed`` keeps the exact JSON sent and received so
the QMP log and error dialogs can show what QEMU said (QEMU answers ``GenericError`` for
most failures, so callers match on ``desc``, not only on ``error_class``).
``Disconnected`` means the peer went away; if a command was in flight its outcome is
unknown and the graph must be re-read. ``PreflightRefused`` is raised before anything is
sent when the planner's preflight refuses a plan; it carries the typed reasons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


class SessionError(Exception):
    """Root of every error the session raises."""


class ConnectFailed(SessionError):
    """The peer could not be reached or did not speak QMP."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot connect to {address}: {reason}")
        self.address = address
        self.reason = reason


class Disconnected(SessionError):
    """The connection is gone. ``outcome_unknown``: a command was in flight when it dropped."""

    def __init__(self, message: str = "not connected", *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class CommandFailed(SessionError):
    """The peer answered a command with a QMP error. ``str()`` is QEMU's ``desc`` text."""

    def __init__(self, sent: Mapping[str, Any], received: Mapping[str, Any]) -> None:
        error = received.get("error", {})
        self.sent: dict[str, Any] = dict(sent)
        self.received: dict[str, Any] = dict(received)
        self.error_class: str = str(error.get("class", "GenericError"))
        self.desc: str = str(error.get("desc", ""))
        super().__init__(self.desc)

    @property
    def command(self) -> str:
        return str(self.sent.get("execute", ""))

    def details(self) -> str:
        """Both messages as JSON, for a log or an error dialog's details pane."""
        return f"sent: {json.dumps(self.sent)}\nreceived: {json.dumps(self.received)}"


class PreflightRefused(SessionError):
    """A plan was refused before anything was sent; ``reasons`` are the typed rule refusals."""

    def __init__(self, reasons: Sequence[Exception]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("; ".join(str(r) for r in self.reasons) or "refused")


class UnsupportedByPeer(SessionError):
    """The peer lacks a command the operation needs (found by ``query-commands``)."""

    def __init__(self, command: str) -> None:
        super().__init__(f"The command {command} has not been found")
        self.command = command


class JobFailed(SessionError):
    """A job the plan waited for ended with an error or was cancelled."""

    def __init__(self, job_id: str, status: str, error: str | None) -> None:
        super().__init__(f"job {job_id} {status}" + (f": {error}" if error else ""))
        self.job_id = job_id
        self.status = status
        self.error = error

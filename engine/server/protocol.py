"""One QMP connection's rules, independent of any transport.

:class:`QMPSession` takes parsed input (a value or a :class:`JSONParseError`) and
answers like a QEMU 7.2 monitor, in QEMU's order of checks:

1. input that is not JSON: the parse error;
2. not an object: ``QMP input must be a JSON object``;
3. its members, in QEMU's member order: ``execute``/``exec-oob`` must be strings,
   ``arguments`` an object, ``id`` anything, ``exec-oob`` only once out-of-band
   execution was negotiated, nothing else;
4. ``execute`` together with ``exec-oob``, or neither;
5. capability negotiation: before it only ``qmp_capabilities`` runs
   (``CommandNotFound``, "Expecting capabilities negotiation with 'qmp_capabilities'"),
   after it ``qmp_capabilities`` is refused ("Capabilities negotiation is already
   complete, command ignored") once its arguments have been checked, as QEMU runs the
   command to refuse it;
6. the command itself, through ``engine.execute``; its :class:`QMPError` becomes the
   error reply. ``id`` is echoed in every reply once the input was an object.

``quit`` is answered here too (``{}``) and reported to the transport through
:attr:`Reply.quit`, because stopping the server is the transport's job. Errors the
engine did not mean to raise (bugs) are answered as ``GenericError`` and logged, so a
bad command never takes the server down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from engine.qmp import QMPError
from engine.server import wire
from engine.server.jsonstream import JSONParseError

log = logging.getLogger(__name__)

#: Capabilities offered in the greeting (what qemu-storage-daemon 7.2 offers).
CAPABILITIES = ("oob",)
#: Commands QEMU allows out-of-band; none of the block commands are among them.
OOB_COMMANDS: frozenset[str] = frozenset()

NEGOTIATION_EXPECTED = "Expecting capabilities negotiation with 'qmp_capabilities'"
NEGOTIATION_DONE = "Capabilities negotiation is already complete, command ignored"


class CommandEngine(Protocol):
    """What a session needs from the engine: QMP-shaped execution."""

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed command: what to run and how to answer."""

    command: str
    arguments: dict[str, Any] | None
    request_id: Any
    has_id: bool
    oob: bool


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send back; ``quit`` asks the transport to stop the server after it."""

    message: dict[str, Any]
    quit: bool = False

    def encode(self) -> bytes:
        return wire.encode(self.message)


class QMPSession:
    """Negotiation state and request checking for one client."""

    def __init__(self, engine: CommandEngine,
                 known_commands: Callable[[], Iterable[str]] | None = None) -> None:
        self.engine = engine
        self.negotiated = False
        self.oob_enabled = False
        self._known_commands = known_commands

    def check(self, message: Any | JSONParseError) -> Request | Reply:
        """Validate one input message: a :class:`Request` to run, or the error reply."""
        if isinstance(message, JSONParseError):
            # the server completes a long text off its loop before it gets here
            desc = message.completed().desc
            assert isinstance(desc, str)
            return Reply(wire.failure("GenericError", desc))
        if not isinstance(message, dict):
            return Reply(wire.failure("GenericError", "QMP input must be a JSON object"))
        has_id = "id" in message
        request_id = message.get("id")

        def fail(desc: str, error_class: str = "GenericError") -> Reply:
            return Reply(wire.failure(error_class, desc, request_id, has_id=has_id))

        for key in wire.member_order(message):
            value = message[key]
            if key == "execute" or (key == "exec-oob" and self.oob_enabled):
                if not isinstance(value, str):
                    return fail(f"QMP input member '{key}' must be a string")
            elif key == "arguments":
                if not isinstance(value, dict):
                    return fail("QMP input member 'arguments' must be an object")
            elif key != "id":
                return fail(f"QMP input member '{key}' is unexpected")
        if "execute" in message and "exec-oob" in message:
            return fail("QMP input member 'execute' clashes with 'exec-oob'")
        oob = "exec-oob" in message
        command = message.get("exec-oob") if oob else message.get("execute")
        if command is None:
            return fail("QMP input lacks member 'execute'")
        if not self.negotiated and command != "qmp_capabilities":
            return fail(NEGOTIATION_EXPECTED, "CommandNotFound")
        return Request(command, message.get("arguments"), request_id, has_id, oob)

    def run(self, request: Request) -> Reply:
        """Execute a checked request (may block: the engine does the work)."""
        def ok(value: Any, *, quit: bool = False) -> Reply:
            return Reply(wire.success(value, request.request_id, has_id=request.has_id), quit)

        def fail(error_class: str, desc: str) -> Reply:
            return Reply(wire.failure(error_class, desc, request.request_id,
                                      has_id=request.has_id))

        if request.oob:
            if not self._command_exists(request.command):
                return fail("CommandNotFound",
                            f"The command {request.command} has not been found")
            if request.command not in OOB_COMMANDS:
                return fail("GenericError",
                            f"The command {request.command} does not support OOB")
        try:
            if request.command == "qmp_capabilities":
                value = self._negotiate(request.arguments)
            else:
                value = self.engine.execute(request.command, request.arguments)
        except QMPError as exc:
            return fail(exc.error_class, exc.desc)
        except Exception as exc:
            log.exception("command %s failed unexpectedly", request.command)
            return fail("GenericError", f"Internal error in {request.command}: {exc}")
        return ok(value, quit=request.command == "quit")

    def handle(self, message: Any | JSONParseError) -> Reply:
        """``check`` then ``run``: the reply to one input message."""
        checked = self.check(message)
        return checked if isinstance(checked, Reply) else self.run(checked)

    def _negotiate(self, arguments: dict[str, Any] | None) -> Any:
        value = self.engine.execute("qmp_capabilities", arguments)   # checks the arguments
        if self.negotiated:
            raise QMPError("CommandNotFound", NEGOTIATION_DONE)
        enable = (arguments or {}).get("enable") or []
        self.oob_enabled = "oob" in enable
        self.negotiated = True
        return value

    def _command_exists(self, command: str) -> bool:
        if self._known_commands is None:
            return True
        return command in set(self._known_commands())

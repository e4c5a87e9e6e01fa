"""The command table: modules register QMP commands with a decorator.

Usage (the handler receives the engine and the validated arguments)::

    from engine.qmp.registry import command
    from engine.qmp.schema import Str, members, Struct

    @command("block-stream", Struct("block-stream", members({"job-id": Str(), ...})))
    def block_stream(engine: Engine, args: dict[str, Any]) -> Any:
        ...
        return {}

``schema`` None means "no arguments" (any member is unexpected). ``boxed`` is
informational (QEMU's boxed commands take one struct as their arguments). A
module's commands exist once the module is imported: :mod:`engine.qmp.commands`
imports every command module by name, so a missing one fails when the engine is
imported, not as "command not found" later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.qmp.schema import QType

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

Handler = Callable[["Engine", dict[str, Any]], Any]

@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    schema: QType | None
    boxed: bool = False
    #: Hidden commands answer like missing ones unless the engine enables them.
    optional: bool = False


_COMMANDS: dict[str, Command] = {}


def command(name: str, schema: QType | None = None, *, boxed: bool = False,
            optional: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler`` as QMP command ``name``; a second registration replaces it."""

    def register(handler: Handler) -> Handler:
        _COMMANDS[name] = Command(name, handler, schema, boxed, optional)
        return handler

    return register


def lookup(name: str) -> Command | None:
    return _COMMANDS.get(name)


def all_commands() -> list[Command]:
    return list(_COMMANDS.values())

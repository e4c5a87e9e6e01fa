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
module's commands exist once the module is imported; :mod:`engine.qmp.engine`
imports the built-in command modules, other packages import theirs from their
``__init__`` (or list them in :data:`COMMAND_MODULES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.qmp.schema import QType

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

Handler = Callable[["Engine", dict[str, Any]], Any]

#: Modules whose import registers commands; the engine imports each that exists.
COMMAND_MODULES: list[str] = [
    "engine.qmp.commands_core",
    "engine.qmp.commands_block",
    "engine.qmp.commands_backend",
    "engine.qmp.commands_qom",
    "engine.jobs",
    "engine.snapshots",
    "engine.server.commands",
]


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

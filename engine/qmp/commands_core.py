"""Commands every QMP peer answers: capabilities, version, command list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import __version__
from engine.qmp.registry import command
from engine.qmp.schema import Enum, ListOf, Struct, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

#: The QEMU version the engine behaves like; clients pick commands by it.
QEMU_VERSION = {"major": 7, "minor": 2, "micro": 0}
PACKAGE = f"blockgraph {__version__} (bundled engine)"


@command("qmp_capabilities", Struct("qmp_capabilities", members(
    {"*enable": ListOf(Enum("QMPCapability", ["oob"]))})))
def qmp_capabilities(engine: Engine, args: dict[str, Any]) -> Any:
    return {}


@command("query-version")
def query_version(engine: Engine, args: dict[str, Any]) -> Any:
    return {"qemu": dict(QEMU_VERSION), "package": PACKAGE}


@command("quit")
def quit_(engine: Engine, args: dict[str, Any]) -> Any:
    """The engine answers ``{}``; the QMP server, seeing ``quit`` succeed, sends that
    reply, then shuts down and closes the images (without a server it does nothing)."""
    return {}


@command("query-commands")
def query_commands(engine: Engine, args: dict[str, Any]) -> Any:
    return [{"name": name} for name in engine.commands()]



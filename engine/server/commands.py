"""Commands that belong to the QMP server rather than to the block layer.

``quit`` is registered here so that it is listed by ``query-commands`` and its
arguments are checked like any command's; the engine answers ``{}`` and the server
(:mod:`engine.server.server`), seeing ``quit`` succeed, sends that reply and then
shuts down and closes the images. Without a server (the engine used directly) it
does nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.qmp.registry import command

if TYPE_CHECKING:
    from engine.qmp.engine import Engine


@command("quit")
def quit_(engine: Engine, args: dict[str, Any]) -> Any:
    return {}

"""The bundled engine's QMP face: ``execute(command, arguments)`` like QEMU 7.2.

:class:`Engine` owns the live block graph (:class:`engine.graph.model.BlockGraph`),
one lock around every command and graph change, and the event listeners. Commands
live in modules that register them with :func:`engine.qmp.registry.command` (all
imported by :mod:`engine.qmp.commands`); the engine dispatches by name, checks
arguments against the command's schema, then calls the handler with the lock held.

The engine is always in command mode: capability negotiation (the greeting, "Expecting
capabilities negotiation", the second ``qmp_capabilities``) is the QMP server's
business, per connection. ``qmp_capabilities`` here just answers ``{}``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.graph.model import BlockGraph
from engine.qdict import qdict_sorted
from engine.qmp import commands as _commands  # noqa: F401  (the command table)
from engine.qmp import registry
from engine.qmp.errors import QMPError, command_not_found, generic
from engine.qmp.schema import validate

Listener = Callable[[dict[str, Any]], None]


class Engine:
    """QEMU 7.2's block layer, in process.

    ``root``: when given, every host path a command names must lie inside it
    (``blockgraph serve --root``). ``x_blockdev_reopen``: also offer the pre-6.1
    ``x-blockdev-reopen`` command (QEMU 7.2 answers CommandNotFound for it, and so does
    the engine by default). ``rng_seed``: seed for the two random digits of auto node
    names, for reproducible names in tests and demos.
    """

    def __init__(self, root: Path | None = None, *, x_blockdev_reopen: bool = False,
                 rng_seed: int | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.lock = threading.RLock()
        self.enabled_optional = {"x-blockdev-reopen"} if x_blockdev_reopen else set()
        self._listeners: list[Listener] = []
        #: called by :meth:`close` before images are closed (e.g. cancel running jobs)
        self.on_close: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()
        self.graph = self._make_graph(rng_seed)
        self.closed = False

    def _make_graph(self, rng_seed: int | None) -> BlockGraph:
        graph = BlockGraph(rng_seed=rng_seed, root=self.root)
        graph.io.emit = lambda event, data: self.emit(event, qdict_sorted(data))
        return graph

    # -- commands -----------------------------------------------------------------
    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one QMP command; return its ``return`` value or raise :class:`QMPError`."""
        cmd = registry.lookup(command)
        if cmd is None or (cmd.optional and command not in self.enabled_optional):
            raise command_not_found(command)
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise generic("QMP input member 'arguments' must be an object")
        validate(cmd.schema, arguments)
        with self.lock:
            if self.closed:
                raise generic("The engine is closed")
            return cmd.handler(self, arguments)

    def commands(self) -> list[str]:
        """Names of the commands this engine answers (as query-commands lists them)."""
        return [c.name for c in reversed(registry.all_commands())
                if not c.optional or c.name in self.enabled_optional]

    def add_backend(self, device_id: str, node: str | None = None, *,
                    removable: bool = False, writable: bool | None = None,
                    drive: str = "") -> None:
        """Attach a VM drive, as qemu-system's ``-device ide-cd,id=ID`` (``removable``)
        or a disk device would; ``node`` is inserted as its medium / root.

        Raises :class:`QMPError` (e.g. unknown node, duplicate id). The same is
        available over QMP as ``x-blockgraph-device-add``.
        """
        self.execute("x-blockgraph-device-add", {
            "id": device_id, **({"node-name": node} if node is not None else {}),
            "removable": removable, **({"writable": writable} if writable is not None
                                       else {}),
            **({"drive": drive} if drive else {})})

    # -- events -------------------------------------------------------------------
    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(event_dict)`` for every event; returns an unsubscribe function."""
        with self._listeners_lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._listeners_lock, contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return unsubscribe

    def emit(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send an event to every listener (in the calling thread) and return it."""
        now = time.time()
        seconds = int(now)
        message: dict[str, Any] = {
            "event": event,
            "data": data if data is not None else {},
            "timestamp": {"seconds": seconds, "microseconds": int((now - seconds) * 1e6)},
        }
        with self._listeners_lock:
            listeners = list(self._listeners)
        for cb in listeners:
            cb(message)
        return message

    # -- lifecycle ----------------------------------------------------------------
    def close(self) -> None:
        """Close every image cleanly; later commands fail.

        ``on_close`` callbacks run first, without the lock (background jobs need it
        to wind down: the job manager cancels and joins its jobs there).
        """
        for callback in list(self.on_close):
            callback()
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.graph is not None:
                self.graph.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Engine", "QMPError"]

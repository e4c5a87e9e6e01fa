"""Block backends: the drives a VM attaches (disks, CD-ROMs) and their media commands.

QEMU's storage daemon has no devices, so its ``query-block`` is ``[]``; in
qemu-system every ``-drive``/``-device`` adds a BlockBackend. The engine can be
started with backends (:meth:`add_backend` below, or the QMP-shaped
``x-blockgraph-backend-add`` command) so the editor can show and exercise the same
graph a VM would have: backends are ``block-backend`` vertices in
``x-debug-query-block-graph``, entries of ``query-block``, and removable ones accept
QEMU's media commands (``blockdev-open-tray``, ``blockdev-close-tray``,
``blockdev-remove-medium``, ``blockdev-insert-medium``, ``blockdev-change-medium``,
``eject``) with QEMU's texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.graph.model import Backend, BlockGraph, GraphError, Node
from engine.graph.opening import blockdev_add as open_blockdev
from engine.qmp.block_info import block_info
from engine.qmp.block_schema import OnOffAuto
from engine.qmp.errors import QMPError, generic
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Enum, Str, Struct, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine


def add_backend(graph: BlockGraph, name: str, node: str | None = None, *,
                removable: bool = False, writable: bool | None = None) -> Backend:
    """Add a named BlockBackend (a VM drive), optionally with ``node`` inserted.

    ``removable``: a CD-ROM-like drive with a tray (media commands allowed);
    ``writable``: default True for disks, False for removable drives.
    """
    if name in graph.backend_names:
        raise GraphError(f"Duplicate ID '{name}' for drive")
    if name in graph.nodes:
        raise GraphError(f"node-name={name} is conflicting with a device id")
    target: Node | None = None
    if node is not None:
        target = graph.find(node)
        if target is None:
            raise GraphError(f"Cannot find device='' nor node-name='{node}'")
    backend = Backend(name=name, removable=removable,
                      writable=(not removable) if writable is None else writable,
                      qdev=f"/machine/peripheral/{name}")
    with graph.transaction():
        graph.add_backend(backend, target)
    return backend


def _backend(graph: BlockGraph, device: str | None, qid: str | None = None) -> Backend:
    name = device if device is not None else qid
    if device is not None and qid is not None:
        raise generic("Parameter 'id' and 'device' cannot both be set")   # hm
    if name is None:
        raise generic("Either 'device' or 'id' must be set")
    backend = graph.backend_names.get(name)
    if backend is None:
        raise QMPError("DeviceNotFound", f"Device '{name}' not found")
    return backend


def _require_removable(backend: Backend) -> None:
    if not backend.removable:
        raise generic(f"Device '{backend.name}' is not removable")


@command("x-blockgraph-backend-add", Struct("x-blockgraph-backend-add", members({
    "id": Str(), "*node-name": Str(), "*removable": Bool(), "*writable": Bool()})))
def backend_add(engine: Engine, args: dict[str, Any]) -> Any:
    """blockgraph's own: a VM drive (QEMU gets these from -drive/-device)."""
    try:
        add_backend(engine.graph, args["id"], args.get("node-name"),
                    removable=args.get("removable", False), writable=args.get("writable"))
    except GraphError as exc:
        raise generic(str(exc)) from exc
    return {}


@command("query-block")
def query_block(engine: Engine, args: dict[str, Any]) -> Any:
    graph = engine.graph
    return [block_info(graph, b) for b in graph.backends.values() if b.name]


_TRAY = Struct("blockdev-open-tray", members({"*device": Str(), "*id": Str(),
                                              "*force": Bool()}))


@command("blockdev-open-tray", _TRAY)
def open_tray(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, args.get("device"), args.get("id"))
    _require_removable(backend)
    if backend.tray_open:
        return {}
    if backend.locked and not args.get("force", False):
        # The guest has locked the tray: QEMU asks it to eject and reports that.
        raise generic(f"Device '{backend.name}' is locked and force was not specified, "
                      "wait for tray to open and try again")
    backend.tray_open = True
    engine.emit("DEVICE_TRAY_MOVED", {"device": backend.name, "id": backend.name,
                                      "tray-open": True})
    return {}


@command("blockdev-close-tray", Struct("blockdev-close-tray", members(
    {"*device": Str(), "*id": Str()})))
def close_tray(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, args.get("device"), args.get("id"))
    _require_removable(backend)
    if not backend.tray_open:
        return {}
    backend.tray_open = False
    engine.emit("DEVICE_TRAY_MOVED", {"device": backend.name, "id": backend.name,
                                      "tray-open": False})
    return {}


@command("blockdev-remove-medium", Struct("blockdev-remove-medium", members({"id": Str()})))
def remove_medium(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, None, args["id"])
    _remove_medium(engine, backend)
    return {}


def _remove_medium(engine: Engine, backend: Backend) -> None:
    _require_removable(backend)
    if not backend.tray_open:
        raise generic(f"Tray of device '{backend.name}' is not open")
    if backend.root is None:
        return
    with engine.graph.transaction():
        engine.graph.detach_backend_root(backend)


@command("blockdev-insert-medium", Struct("blockdev-insert-medium", members(
    {"id": Str(), "node-name": Str()})))
def insert_medium(engine: Engine, args: dict[str, Any]) -> Any:
    graph = engine.graph
    backend = _backend(graph, None, args["id"])
    node = graph.find(args["node-name"])
    if node is None:
        raise generic(f"Node '{args['node-name']}' not found")
    _insert_medium(engine, backend, node)
    return {}


def _insert_medium(engine: Engine, backend: Backend, node: Node) -> None:
    _require_removable(backend)
    if not backend.tray_open:
        raise generic(f"Tray of device '{backend.name}' is not open")
    if backend.root is not None:
        raise generic("There already is a medium in the device")
    if any(isinstance(link.parent, Backend) for link in node.parents):
        raise generic(f"Node '{node.name}' is already in use")
    try:
        with engine.graph.transaction():
            engine.graph.attach_backend_root(backend, node)
    except GraphError as exc:
        raise generic(str(exc)) from exc


@command("blockdev-change-medium", Struct("blockdev-change-medium", members({
    "*device": Str(), "*id": Str(), "filename": Str(), "*format": Str(),
    "*force": Bool(),
    "*read-only-mode": Enum("BlockdevChangeReadOnlyMode", ["retain", "read-only",
                                                            "read-write"]),
})))
def change_medium(engine: Engine, args: dict[str, Any]) -> Any:
    """Open ``filename`` as a new medium: open the tray, swap the medium, close the tray."""
    graph = engine.graph
    backend = _backend(graph, args.get("device"), args.get("id"))
    _require_removable(backend)
    mode = args.get("read-only-mode", "retain")
    old_ro = backend.root.child.read_only if backend.root is not None else True
    read_only = {"retain": old_ro, "read-only": True, "read-write": False}[mode]
    fmt = args.get("format")
    if fmt is None:
        from engine.graph.opening import _probe

        try:
            fmt = _probe(graph.host_path(args["filename"]))
        except GraphError as exc:
            raise generic(str(exc)) from exc
    name = f"blockgraph-medium-{backend.name}"
    n = 0
    while name in graph.nodes:
        n += 1
        name = f"blockgraph-medium-{backend.name}-{n}"
    opts: dict[str, Any] = {"driver": fmt, "node-name": name, "read-only": read_only,
                            "file": {"driver": "file", "filename": args["filename"]}}
    try:
        with graph.transaction(restore_names=False):
            node = open_blockdev(graph, opts)
            graph.set(node, "monitor_owned", False)
            _open_tray_quietly(backend, engine, force=args.get("force", False))
            if backend.root is not None:
                graph.detach_backend_root(backend)
            graph.attach_backend_root(backend, node)
    except GraphError as exc:
        raise generic(str(exc)) from exc
    if backend.tray_open:
        backend.tray_open = False
        engine.emit("DEVICE_TRAY_MOVED", {"device": backend.name, "id": backend.name,
                                          "tray-open": False})
    return {}


def _open_tray_quietly(backend: Backend, engine: Engine, force: bool) -> None:
    if backend.tray_open:
        return
    if backend.locked and not force:
        raise GraphError(f"Device '{backend.name}' is locked and force was not specified, "
                         "wait for tray to open and try again")
    backend.tray_open = True
    engine.emit("DEVICE_TRAY_MOVED", {"device": backend.name, "id": backend.name,
                                      "tray-open": True})


@command("eject", Struct("eject", members({"*device": Str(), "*id": Str(),
                                           "*force": Bool()})))
def eject(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, args.get("device"), args.get("id"))
    _require_removable(backend)
    if not backend.tray_open:
        if backend.locked and not args.get("force", False):
            raise generic(f"Device '{backend.name}' is locked and force was not specified, "
                          "wait for tray to open and try again")
        backend.tray_open = True
        engine.emit("DEVICE_TRAY_MOVED", {"device": backend.name, "id": backend.name,
                                          "tray-open": True})
    _remove_medium(engine, backend)
    return {}


__all__ = ["OnOffAuto", "add_backend"]

"""Block backends: the drives a VM attaches (disks, CD-ROMs) and their media commands.

QEMU's storage daemon has no devices, so its ``query-block`` is ``[]``; in
qemu-system every ``-drive``/``-device`` adds a BlockBackend. The engine can be
started with backends (:func:`add_backend` below, ``Engine.add_backend``, or the
QMP-shaped ``x-blockgraph-device-add`` command) so the editor can show and exercise
the same graph a VM would have. A backend behaves like a qemu-system drive made with
``-device ide-cd,id=ID`` (removable) or a disk device: a ``block-backend`` vertex
named ID in ``x-debug-query-block-graph``, a ``query-block`` entry with ``device``
"" and ``qdev`` ID, and for removable ones QEMU's media commands
(``blockdev-open-tray``, ``blockdev-close-tray``, ``blockdev-remove-medium``,
``blockdev-insert-medium``, ``blockdev-change-medium``, ``eject``) with the texts and
``DEVICE_TRAY_MOVED`` events observed on qemu-system-x86_64 7.2. Their checks are
QEMU's rules (:mod:`engine.graph.rules.media`), the ones the editor's preflight makes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.graph import rules
from engine.graph.model import Backend, BlockGraph, GraphError, Node
from engine.graph.opening import PROBE, open_node
from engine.qmp.block_info import block_info
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Enum, Str, Struct, members
from engine.refusal import device_not_found, generic

if TYPE_CHECKING:
    from engine.qmp.engine import Engine


def add_backend(graph: BlockGraph, device_id: str, node: str | None = None, *,
                removable: bool = False, writable: bool | None = None,
                drive: str = "") -> Backend:
    """Add a VM drive with device id ``device_id``, optionally with ``node`` inserted.

    ``removable``: a CD-ROM-like drive with a tray (read-only unless ``writable``);
    ``drive``: a BlockBackend name as ``-drive id=`` would give (default: none).
    """
    for taken in (device_id, drive):
        if taken and taken in graph.backend_names:
            raise GraphError(f"Duplicate device ID '{taken}'")
    if drive and drive in graph.nodes:
        raise GraphError(f"node-name={drive} is conflicting with a device id")
    target: Node | None = None
    if node is not None:
        target = graph.find(node)
        if target is None:
            raise GraphError(f"Cannot find device='' nor node-name='{node}'")
    backend = Backend(name=drive, removable=removable,
                      writable=(not removable) if writable is None else writable,
                      qdev=device_id)
    with graph.transaction():
        graph.add_backend(backend, target)
        if drive:
            graph.backend_names[device_id] = backend
    return backend


def _backend(graph: BlockGraph, device: str | None, qid: str | None) -> Backend:
    if (device is None) == (qid is None):
        raise generic("Need exactly one of 'device' and 'id'")
    if device is not None:
        found = next((b for b in graph.backends.values() if b.name == device), None)
        if found is None:
            raise device_not_found(device)
        return found
    assert qid is not None
    found = next((b for b in graph.backends.values() if b.qdev == qid), None)
    if found is None:
        raise device_not_found(qid)
    return found


def _device(backend: Backend, *, with_medium: bool = True) -> dict[str, rules.Device]:
    """The backend as the rules see a device in ``query-block`` (by the name QEMU's
    texts give it). ``with_medium`` False: the checks QEMU makes before it opens the
    tray, which leave what holds the medium to the removal that follows."""
    medium = backend.root.child if backend.root is not None and with_medium else None
    device = rules.Device(backend.debug_name, backend.removable, backend.has_tray,
                          backend.tray_open, backend.locked,
                          medium.name if medium is not None else None,
                          medium.read_only if medium is not None else not backend.writable)
    return {device.name: device}


def _tray_moved(engine: Engine, backend: Backend, tray_open: bool) -> None:
    backend.tray_open = tray_open
    engine.emit("DEVICE_TRAY_MOVED", {"device": backend.name, "tray-open": tray_open,
                                      "id": backend.qdev or ""})


def _open_tray(engine: Engine, backend: Backend, force: bool) -> None:
    """Open the tray unless it is open or the guest locked it (QEMU then asks the guest
    to open it, and the command still succeeds)."""
    if backend.has_tray and not backend.tray_open and (force or not backend.locked):
        _tray_moved(engine, backend, True)


@command("x-blockgraph-device-add", Struct("x-blockgraph-device-add", members({
    "id": Str(), "*node-name": Str(), "*removable": Bool(), "*writable": Bool(),
    "*drive": Str()})))
def device_add(engine: Engine, args: dict[str, Any]) -> Any:
    """blockgraph's own: a VM drive (QEMU makes these from -drive/-device)."""
    add_backend(engine.graph, args["id"], args.get("node-name"),
                removable=args.get("removable", False), writable=args.get("writable"),
                drive=args.get("drive", ""))
    return {}


@command("query-block")
def query_block(engine: Engine, args: dict[str, Any]) -> Any:
    graph = engine.graph
    return [block_info(graph, b) for b in graph.backends.values()
            if b.device_kind == "device" and (b.name or b.qdev)]


_DEVICE_OR_ID = {"*device": Str(), "*id": Str()}


@command("blockdev-open-tray", Struct("blockdev-open-tray", members(
    {**_DEVICE_OR_ID, "*force": Bool()})))
def open_tray(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, args.get("device"), args.get("id"))
    rules.check_tray(engine.graph, _device(backend), backend.debug_name, "open",
                     force=args.get("force", False))
    _open_tray(engine, backend, args.get("force", False))
    return {}


@command("blockdev-close-tray", Struct("blockdev-close-tray", members(_DEVICE_OR_ID)))
def close_tray(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, args.get("device"), args.get("id"))
    rules.check_tray(engine.graph, _device(backend), backend.debug_name, "close")
    if backend.tray_open:
        _tray_moved(engine, backend, False)
    return {}


@command("blockdev-remove-medium", Struct("blockdev-remove-medium", members({"id": Str()})))
def remove_medium(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, None, args["id"])
    _remove_medium(engine, backend)
    return {}


def _remove_medium(engine: Engine, backend: Backend) -> None:
    rules.check_tray(engine.graph, _device(backend), backend.debug_name, "remove")
    if backend.root is None:
        return
    with engine.graph.transaction():
        engine.graph.detach_backend_root(backend)


@command("blockdev-insert-medium", Struct("blockdev-insert-medium", members(
    {"id": Str(), "node-name": Str()})))
def insert_medium(engine: Engine, args: dict[str, Any]) -> Any:
    graph = engine.graph
    backend = _backend(graph, None, args["id"])
    rules.check_tray(graph, _device(backend), backend.debug_name, "insert",
                     node=args["node-name"])
    with graph.transaction():
        graph.attach_backend_root(backend, graph.nodes[args["node-name"]])


@command("blockdev-change-medium", Struct("blockdev-change-medium", members({
    **_DEVICE_OR_ID, "filename": Str(), "*format": Str(), "*force": Bool(),
    "*read-only-mode": Enum("BlockdevChangeReadOnlyMode", ["retain", "read-only",
                                                            "read-write"]),
})))
def change_medium(engine: Engine, args: dict[str, Any]) -> Any:
    """Open ``filename`` as a new (auto-named) medium, swap it in, close the tray."""
    graph = engine.graph
    backend = _backend(graph, args.get("device"), args.get("id"))
    rules.check_medium(graph, _device(backend, with_medium=False), backend.debug_name,
                       "change", force=args.get("force", False))
    mode = args.get("read-only-mode", "retain")
    if backend.root is not None:
        retained = backend.root.child.read_only
    elif backend.root_read_only is not None:
        retained = backend.root_read_only
    else:
        retained = not backend.writable
    read_only = {"retain": retained, "read-only": True, "read-write": False}[mode]
    opts: dict[str, Any] = {"driver": args.get("format") or PROBE, "read-only": read_only,
                            "file": {"driver": "file", "filename": args["filename"]}}
    with graph.transaction(restore_names=False):
        node = open_node(graph, opts, inherited={}, role=None)
        _open_tray(engine, backend, args.get("force", False))
        rules.check_tray(graph, _device(backend), backend.debug_name, "remove")
        if backend.root is not None:
            graph.detach_backend_root(backend)
        graph.attach_backend_root(backend, node)
    if backend.tray_open:
        _tray_moved(engine, backend, False)
    return {}


@command("eject", Struct("eject", members({**_DEVICE_OR_ID, "*force": Bool()})))
def eject(engine: Engine, args: dict[str, Any]) -> Any:
    backend = _backend(engine.graph, args.get("device"), args.get("id"))
    rules.check_medium(engine.graph, _device(backend, with_medium=False),
                       backend.debug_name, "eject", force=args.get("force", False))
    _open_tray(engine, backend, args.get("force", False))
    _remove_medium(engine, backend)
    return {}

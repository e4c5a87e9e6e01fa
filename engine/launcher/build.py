"""A sorted QEMU command line applied to the engine: nodes, drives and devices.

QEMU 7.2 creates what a command line asks for in a fixed order, whatever the order
on the line: objects (``-object``) first, then every ``-blockdev``, then every
``-drive``, then the devices (``-device``) in order. The same order is kept so that
automatic node names and errors come out as QEMU's do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.formats.errors import ImageError
from engine.formats.probe import open_image
from engine.graph import perms as P
from engine.graph.model import Backend, GraphError
from engine.graph.opening import blockdev_add, open_node
from engine.launcher.cmdline import (
    BLOCK_DEVICES,
    CommandLine,
    CommandLineError,
    Option,
    properties,
)
from engine.launcher.drive import DriveError, parse_drive
from engine.launcher.opts import OptsError, parse_blockdev_arg, typed
from engine.qmp.block_schema import BlockdevOptions
from engine.qmp.engine import Engine
from engine.qmp.errors import QMPError
from engine.qmp.schema import validate

#: the qdev path of the block backend inside each kind of device
_BACKEND_CHILD = {"virtio-blk": "/virtio-backend", "virtio-blk-pci": "/virtio-backend"}
#: -drive if= → the device QEMU creates for it (None: no device)
_DRIVE_DEVICE = {"virtio": "virtio-blk-pci", "ide": "ide-hd", "scsi": "scsi-hd",
                 "floppy": "floppy", "none": None}


@dataclass
class Built:
    """What a command line made: drives by id, devices by id, iothreads."""

    drives: dict[str, Backend] = field(default_factory=dict)
    devices: dict[str, Backend] = field(default_factory=dict)
    iothreads: list[str] = field(default_factory=list)
    anon_devices: int = 0


class BuildError(ValueError):
    """An option QEMU would refuse: ``option`` as written and QEMU's text."""

    def __init__(self, option: Option, text: str) -> None:
        super().__init__(f"{option.text()}: {text}")
        self.option = option


def build(engine: Engine, line: CommandLine) -> Built:
    """Create the command line's nodes, drives and devices in ``engine``."""
    built = Built()
    for option in line.of("-object"):
        _object(option, built)
    for option in line.of("-blockdev"):
        _blockdev(engine, option)
    counters: dict[str, int] = {}
    legacy = [_legacy_drive(o) for o in line.modelled
              if o.name in ("-cdrom", "-hda", "-hdb", "-hdc", "-hdd")]
    for option in [*line.of("-drive"), *legacy]:
        _drive(engine, option, counters, built)
    for option in line.of("-device"):
        add_device(engine, option, built)
    return built


def _legacy_drive(option: Option) -> Option:
    index = {"-hda": 0, "-hdb": 1, "-hdc": 2, "-hdd": 3, "-cdrom": 2}[option.name]
    media = ",media=cdrom" if option.name == "-cdrom" else ""
    path = (option.arg or "").replace(",", ",,")
    return Option("-drive", f"file={path},index={index}{media}")


def _object(option: Option, built: Built) -> None:
    pairs = properties(option.arg or "", "qom-type")
    if pairs.get("qom-type") == "iothread":
        if "id" not in pairs:
            raise BuildError(option, "Parameter 'id' is missing")
        built.iothreads.append(pairs["id"])


def _blockdev(engine: Engine, option: Option) -> None:
    try:
        options = typed(parse_blockdev_arg(option.arg or ""), BlockdevOptions)
        validate(BlockdevOptions, options)
        with engine.lock:
            blockdev_add(engine.graph, options)
    except (OptsError, QMPError, GraphError) as exc:
        raise BuildError(option, _text(exc)) from None


def _drive(engine: Engine, option: Option, counters: dict[str, int], built: Built) -> None:
    try:
        drive = parse_drive(option.arg or "", counters)
    except (DriveError, OptsError) as exc:
        raise BuildError(option, str(exc)) from None
    if drive.id in built.drives:
        raise BuildError(option, f"Duplicate ID '{drive.id}' for drive")
    node = None
    graph = engine.graph
    with engine.lock:
        if drive.node_options is not None:
            try:
                options = _header_backings(_with_probed_format(
                    typed(drive.node_options, BlockdevOptions)))
                validate(BlockdevOptions, options)
                with graph.transaction(restore_names=False):
                    node = open_node(graph, options, inherited={}, role=None)
            except (OptsError, QMPError, GraphError) as exc:
                raise BuildError(option, _text(exc)) from None
        device_kind = _DRIVE_DEVICE.get(drive.interface)
        qdev = None
        if device_kind is not None:
            qdev = f"/machine/peripheral-anon/device[{built.anon_devices}]"
            built.anon_devices += 1
            qdev += _BACKEND_CHILD.get(device_kind, "")
        backend = Backend(name=drive.id, removable=drive.removable,
                          writable=not drive.read_only, qdev=qdev)
        try:
            with graph.transaction():
                graph.add_backend(backend, node)
        except GraphError as exc:
            raise BuildError(option, _text(exc)) from None
    built.drives[drive.id] = backend


def _probe(path: str) -> str:
    try:
        image = open_image(path)
    except ImageError as exc:
        raise GraphError(getattr(exc, "message", str(exc))) from None
    try:
        return image.format or "raw"
    finally:
        image.close()


def _with_probed_format(options: dict[str, Any]) -> dict[str, Any]:
    children = options.get("children")
    if isinstance(children, list):      # quorum's: each one probed like a drive's root
        options = {**options, "children": [
            _with_probed_format(_with_file_protocol(c)) if isinstance(c, dict) else c
            for c in children]}
    if "driver" in options:
        return options
    file_opts = options.get("file", {})
    fmt = _probe(file_opts.get("filename", "")) if isinstance(file_opts, dict) else "raw"
    return {"driver": fmt, **options}


def _with_file_protocol(options: dict[str, Any]) -> dict[str, Any]:
    """A ``file.filename`` without a driver names a host file (the ``file`` protocol)."""
    file_opts = options.get("file")
    if isinstance(file_opts, dict) and "driver" not in file_opts and "filename" in file_opts:
        return {**options, "file": {"driver": "file", **file_opts}}
    return options


def _header_backings(options: dict[str, Any]) -> dict[str, Any]:
    """``backing.node-name=...`` without ``backing.driver``: options for the backing
    file the image header names (``-drive`` passes them to it). Each such level gets
    the header's file and format, as opening the header chain would."""
    backing = options.get("backing")
    if not isinstance(backing, dict) or "driver" in backing:
        return options
    file_opts = options.get("file")
    if not isinstance(file_opts, dict) or file_opts.get("driver") != "file":
        return options
    path = str(file_opts.get("filename", ""))
    try:
        image = open_image(path, str(options["driver"]))
    except ImageError as exc:
        raise GraphError(getattr(exc, "message", str(exc))) from None
    try:
        name = getattr(image, "backing_file", None)
        fmt = getattr(image, "backing_format", None)
    finally:
        image.close()
    if not name:
        return {k: v for k, v in options.items() if k != "backing"}
    if not os.path.isabs(name):
        name = os.path.join(os.path.dirname(path), name)
    level = {"driver": fmt or _probe(name), "file": {"driver": "file", "filename": name},
             **backing}
    return {**options, "backing": _header_backings(level)}


def add_device(engine: Engine, option: Option, built: Built) -> None:
    values = properties(option.arg or "", "driver")
    driver = values.get("driver", "")
    if driver not in BLOCK_DEVICES:
        return                                  # a bus: it holds devices, no backend
    dev_id = values.get("id")
    key = dev_id or f"/machine/peripheral-anon/device[{built.anon_devices}]"
    if dev_id is None:
        built.anon_devices += 1
    # query-block names the device by id; a virtio disk's backend sits in its inner
    # virtio device, which has none, so it is named by its path
    qdev = key
    if driver in _BACKEND_CHILD:
        qdev = (f"/machine/peripheral/{dev_id}" if dev_id else key) + _BACKEND_CHILD[driver]
    removable = driver in ("ide-cd", "scsi-cd", "floppy")
    graph = engine.graph
    drive = values.get("drive")
    with engine.lock:
        if drive is None:
            if not removable:
                raise BuildError(option, "Drive property not set")
            backend = Backend(name="", removable=True, writable=False, qdev=qdev)
            with graph.transaction():
                graph.add_backend(backend, None)
        elif drive in built.drives:
            backend = built.drives[drive]
            if backend.qdev is not None or backend in built.devices.values():
                raise BuildError(option, f"Property '{driver}.drive' can't take value "
                                         f"'{drive}', it's in use")
            backend.qdev = qdev
            backend.removable = removable or backend.removable
        else:
            node = graph.find(drive)
            if node is None:
                raise BuildError(option, f"Property '{driver}.drive' can't find value "
                                         f"'{drive}'")
            writable = not removable and not node.read_only
            backend = Backend(name="", removable=removable, writable=writable, qdev=qdev)
            try:
                with graph.transaction():
                    graph.add_backend(backend, node)
                    if _on(values.get("share-rw", "off")):
                        _share_writes(graph, backend)
            except GraphError as exc:
                raise BuildError(option, _text(exc)) from None
    built.devices[key] = backend


def _on(text: str) -> bool:
    return text in ("on", "yes", "true", "True")


def _share_writes(graph: Any, backend: Backend) -> None:
    """``share-rw=on``: the device lets other users write its node too."""
    link = backend.root
    if link is None or link.fixed is None:
        return
    perm, shared = link.fixed
    graph.set(link, "fixed", (perm, shared | P.WRITE))
    graph.set(link, "shared", shared | P.WRITE)
    graph.refresh_perms([link.child])


def _text(exc: Exception) -> str:
    if isinstance(exc, QMPError):
        return exc.desc if hasattr(exc, "desc") else str(exc)
    return str(exc)


__all__ = ["BuildError", "Built", "CommandLineError", "build"]

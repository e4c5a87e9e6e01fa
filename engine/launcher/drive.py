"""``-drive``: QEMU's legacy drive option turned into a node tree and a BlockBackend.

The rules followed (QEMU 7.2, ``blockdev.c``): ``id=`` names the BlockBackend (by
default from ``if=`` and the index: ``virtio0``, ``ide0-hd0``, ``ide0-cd1``...);
options the drive itself consumes (``if``, ``media``, ``cache``, ``aio``, ``format``,
``file``, ``read-only``, ``rerror``/``werror``...) are taken out and the rest, dotted
(``backing.node-name``, ``file.locking``), go to the format driver; ``cache=`` sets
``cache.direct`` and ``cache.no-flush``; ``file=`` may be a plain path, a
``PROTOCOL:...`` name, or ``json:{...}``. Nodes not named get automatic ``#block``
names, the protocol node first, as QEMU opens it first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.launcher.opts import OptsError, dotted_tree, parse_bool, split_opts
from engine.qdict import JSONObject, JSONValue

INTERFACES = ("ide", "scsi", "floppy", "pflash", "mtd", "sd", "virtio", "none", "xen")
#: cache= modes -> (cache.direct, cache.no-flush, BlockBackend write cache)
CACHE_MODES = {"writeback": (False, False, True), "none": (True, False, True),
               "writethrough": (False, False, False), "directsync": (True, False, False),
               "unsafe": (False, True, True)}
#: options the drive itself consumes (the others go to the block driver)
DRIVE_ONLY = {"if", "id", "index", "bus", "unit", "media", "snapshot", "cache", "aio",
              "format", "file", "read-only", "rerror", "werror", "serial", "addr",
              "copy-on-read", "boot", "trans", "cyls", "heads", "secs", "throttling.iops-total"}
#: drive options that change a VM in ways the engine does not model
UNMODELLED_DRIVE_OPTIONS = ("snapshot", "copy-on-read", "throttling.", "bps", "iops",
                            "group")
#: how many units an interface has on one bus (for index= → bus/unit)
UNITS_PER_BUS = {"ide": 2, "scsi": 7}


class DriveError(ValueError):
    """A ``-drive`` QEMU would refuse; the text is QEMU's."""


@dataclass
class Drive:
    """One ``-drive``, decoded."""

    id: str
    interface: str
    media: str = "disk"
    read_only: bool = False
    write_cache: bool = True
    #: blockdev-style options of the root node (None: a drive with no medium)
    node_options: dict[str, Any] | None = None
    unmodelled: list[str] = field(default_factory=list)
    index: int = 0

    @property
    def removable(self) -> bool:
        return self.media == "cdrom" or self.interface == "floppy"


def parse_drive(text: str, counters: dict[str, int]) -> Drive:
    """Decode one ``-drive`` argument; ``counters`` numbers drives per interface."""
    pairs = split_opts(text)
    opts: dict[str, str] = {}
    for key, value in pairs:
        opts[key] = value
    drive = _front_end(opts, counters)
    root = _medium_options(opts, pairs)
    if root is None:
        return drive
    cache = opts.get("cache")
    direct, no_flush, _write_cache = CACHE_MODES[cache or "writeback"]
    if direct or no_flush or cache is not None:
        root["cache"] = {"direct": direct, "no-flush": no_flush}
    if drive.read_only:
        root["read-only"] = True
    drive.node_options = root
    return drive


def _front_end(opts: dict[str, str], counters: dict[str, int]) -> Drive:
    """The drive as the guest sees it: bus, media, index, id, read-only, cache."""
    interface = opts.get("if", "ide")
    if interface not in INTERFACES:
        raise DriveError(f"unsupported bus type '{interface}'")
    media = opts.get("media", "disk")
    if media not in ("disk", "cdrom"):
        raise DriveError(f"'{media}' invalid media")
    index = int(opts["index"]) if "index" in opts else counters.get(interface, 0)
    counters[interface] = index + 1
    drive_id = opts.get("id") or _default_id(interface, index, media)
    try:
        read_only = parse_bool(opts.get("read-only", "off"), "read-only")
    except OptsError as exc:
        raise DriveError(str(exc)) from None
    if media == "cdrom":
        read_only = True
    cache = opts.get("cache")
    if cache is not None and cache not in CACHE_MODES:
        raise DriveError("invalid cache option")
    _direct, _no_flush, write_cache = CACHE_MODES[cache or "writeback"]
    drive = Drive(id=drive_id, interface=interface, media=media, read_only=read_only,
                  write_cache=write_cache, index=index)
    drive.unmodelled = [k for k in opts
                        if any(k == u or k.startswith(u) for u in UNMODELLED_DRIVE_OPTIONS)
                        and not (k == "snapshot" and opts[k] == "off")]
    return drive


def _medium_options(opts: dict[str, str],
                    pairs: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The ``blockdev-add`` options of the drive's medium, or None for a drive without
    one (an empty CD-ROM, ``if=none``)."""
    driver_pairs = [(k, v) for k, v in pairs if k not in DRIVE_ONLY]
    tree = dotted_tree(driver_pairs)
    filename = opts.get("file")
    fmt = opts.get("format")
    if filename is None and fmt is None and "driver" not in tree:
        if any(k not in ("if", "id", "index", "media", "bus", "unit", "cache", "aio",
                         "read-only", "rerror", "werror") for k in opts):
            raise DriveError("Must specify either driver or file")
        return None
    if filename == "" and fmt is None:
        return None
    root: dict[str, Any] = {}
    if fmt is not None:
        if "driver" in tree:
            raise DriveError("Cannot specify both 'driver' and 'format'")
        root["driver"] = fmt
    root.update(tree)
    if filename is not None:
        file_opts = _file_options(filename)
        file_opts.update(root.pop("file", {}) if isinstance(root.get("file"), dict) else {})
        if "aio" in opts:
            file_opts["aio"] = opts["aio"]
        if "driver" in root and root["driver"] not in ("file", "raw-file"):
            root["file"] = file_opts
        elif "driver" not in root:
            root["file"] = file_opts          # the format is probed from the file
        else:
            root.update(file_opts)
    return root


def _file_options(filename: str) -> dict[str, Any]:
    """The protocol node for ``file=``: ``json:{...}``, ``PROTOCOL:rest`` or a path."""
    if filename.startswith("json:"):
        try:
            value = json.loads(filename[5:])
        except json.JSONDecodeError:
            raise DriveError(f"Could not parse the JSON options of '{filename}'") from None
        options: JSONObject = _undot(value)
        return options
    protocol, sep, _ = filename.partition(":")
    if sep and "/" not in protocol and protocol:
        if protocol != "file":
            raise DriveError(f"Unknown protocol '{protocol}'")
        filename = filename[len("file:"):]
    return {"driver": "file", "filename": filename}


def _undot(value: JSONValue) -> JSONValue:
    if not isinstance(value, dict):
        return value
    flat = [(k, v) for k, v in value.items() if not isinstance(v, dict)]
    nested = {k: _undot(v) for k, v in value.items() if isinstance(v, dict)}
    tree = dotted_tree([(k, v) for k, v in flat])
    tree.update(nested)
    return tree


def _default_id(interface: str, index: int, media: str) -> str:
    if interface in UNITS_PER_BUS:
        per_bus = UNITS_PER_BUS[interface]
        bus, unit = divmod(index, per_bus)
        kind = "cd" if media == "cdrom" else "hd"
        return f"{interface}{bus}-{kind}{unit}"
    return f"{interface}{index}"

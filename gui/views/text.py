"""Card text: the fonts cards are drawn with, and how sizes, files and names read.

Shared by the cards, the links' labels and the docks (the inspector and the jobs
list show sizes the way cards do).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from PySide6.QtGui import QFont, QFontMetricsF

if TYPE_CHECKING:
    from engine.graph.snapshot import NodeInfo

_FONTS: dict[str, QFont] = {}
_METRICS: dict[str, QFontMetricsF] = {}


def font(kind: str) -> QFont:
    """Shared fonts for card text (created once; QFont construction is not free)."""
    if kind not in _FONTS:
        f = QFont()
        if kind == "title":
            f.setPointSizeF(10.0)
            f.setBold(True)
        elif kind == "auto":
            f.setPointSizeF(10.0)
            f.setItalic(True)
        elif kind == "small":
            f.setPointSizeF(8.0)
        elif kind == "badge":
            f.setPointSizeF(7.5)
            f.setBold(True)
        elif kind == "frame":
            f.setPointSizeF(11.0)
            f.setBold(True)
        else:
            f.setPointSizeF(8.5)
        _FONTS[kind] = f
    return _FONTS[kind]


def metrics(kind: str) -> QFontMetricsF:
    if kind not in _METRICS:
        _METRICS[kind] = QFontMetricsF(font(kind))
    return _METRICS[kind]


def human_size(n: int | None) -> str:
    """1536 -> '1.5 KiB' (binary units, like qemu-img)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" or size == int(size) else (
                f"{size:.1f} {unit}")
        size /= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


def display_file(filename: str) -> str:
    """What a card shows for a filename: the base name; for ``json:`` names, the base
    name of the innermost ``file`` child's filename (what the user opened)."""
    if filename.startswith("json:"):
        try:
            opts = json.loads(filename[5:])
        except ValueError:
            return filename
        while isinstance(opts, dict):
            if isinstance(opts.get("filename"), str):
                return os.path.basename(opts["filename"])
            opts = opts.get("file")
        return filename
    return os.path.basename(filename)


def readable_device(name: str) -> str:
    """A device id as it is; a QOM path (``/machine/peripheral-anon/device[0]/
    virtio-backend``, what QEMU names a device without an id by) shortened to the part
    that tells devices apart (``peripheral-anon/device[0]``)."""
    if not name.startswith("/"):
        return name
    parts = [p for p in name.split("/") if p and p != "machine"]
    if parts and parts[-1].endswith("-backend"):
        parts = parts[:-1]
    return "/".join(parts[-2:]) or name


def display_name(info: NodeInfo) -> str:
    if info.kind == "block-backend":
        return readable_device(info.name) if info.name else "(anonymous backend)"
    return info.name

"""A node's filename as QEMU reports it: a plain name or a ``json:{...}`` pseudo-name.

Rules (QEMU 7.2, ``bdrv_refresh_filename``): a protocol node's *exact filename* is
its own (``file``: the ``filename`` option; ``null-co``: ``null-co://`` unless a
strong option — ``size`` or ``read-zeroes`` — was given). A format node inherits its
``file`` child's exact filename when it has no strong options of its own (raw:
``offset``/``size``) and its backing is not *overridden*: the backing is overridden
when the attached backing node's filename differs from ``auto_backing_file`` or when
nothing is attached though the header names a backing file. Job filters copy their
child's filename. Everything else is ``json:`` + the node's full options in QEMU's
member order: ``driver``, strong options and one member per child (the backing only
when overridden, ``null`` when detached).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from engine.qmp.qdict import qdict_sorted

if TYPE_CHECKING:
    from engine.graph.model import Node

#: Options that make a filename "not exact", by driver.
STRONG_OPTIONS = {
    "file": ("filename",),
    "null-co": ("size", "read-zeroes"),
    "null-aio": ("size", "read-zeroes"),
    "raw": ("offset", "size"),
    "throttle": ("throttle-group",),
}
_PASS_FILENAME = frozenset({"commit_top", "mirror_top"})


def filename(node: Node, memo: dict[str, str]) -> str:
    """The node's reported filename (``memo`` caches results within one query)."""
    cached = memo.get(node.name)
    if cached is not None:
        return cached
    exact = exact_filename(node, memo)
    result = exact if exact else "json:" + _dump(full_options(node, memo))
    memo[node.name] = result
    return result


def exact_filename(node: Node, memo: dict[str, str]) -> str | None:
    drv = node.driver
    if drv == "file":
        return str(node.options.get("filename", ""))
    if drv in ("null-co", "null-aio"):
        if any(k in node.options for k in STRONG_OPTIONS[drv]):
            return None
        return f"{drv}://"
    if drv in _PASS_FILENAME or (drv == "copy-on-read" and node.implicit):
        below = node.child("file") or node.child("backing")
        return filename(below, memo) if below is not None else None
    if drv in ("qcow2", "raw", "qcow", "qed", "vmdk", "vdi", "vhdx", "vpc"):
        file_child = node.child("file")
        if file_child is None or not is_protocol(file_child):
            return None
        if any(k in node.options for k in STRONG_OPTIONS.get(drv, ())):
            return None
        if backing_overridden(node, memo):
            return None
        return exact_filename(file_child, memo)
    return None


def is_protocol(node: Node) -> bool:
    from engine.graph.model import PROTOCOL_DRIVERS

    return node.driver in PROTOCOL_DRIVERS


def backing_overridden(node: Node, memo: dict[str, str]) -> bool:
    backing = node.child("backing")
    if backing is not None:
        return filename(backing, memo) != node.auto_backing_file
    return bool(node.header_backing)


def full_options(node: Node, memo: dict[str, str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"driver": node.driver}
    for key in STRONG_OPTIONS.get(node.driver, ()):
        if key in node.options:
            opts[key] = node.options[key]
    for role, link in node.children.items():
        if role == "backing":
            continue
        opts[role] = full_options(link.child, memo)
    if node.driver not in ("file", "null-co", "null-aio") and backing_overridden(node, memo):
        backing = node.child("backing")
        opts["backing"] = full_options(backing, memo) if backing is not None else None
    return opts


def _dump(opts: dict[str, Any]) -> str:
    return json.dumps(qdict_sorted(opts), separators=(", ", ": "))

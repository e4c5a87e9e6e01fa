"""A node's full current option set, rebuilt for ``blockdev-reopen``.

Reopen resets every option it is not given (read-only → false, cache → defaults,
detect-zeroes → off, discard → ignore, …) and refuses to reset options that cannot
change (``locking``, ``aio``, null ``size``…). So a link change must repeat all of the
node's options. They come from two sources:

* options the session itself sent (``blockdev-add``/``blockdev-reopen``) — complete,
  including what queries never report (``discard``, ``locking``, qcow2 cache sizes);
* the query results (BlockDeviceInfo): ``ro``, ``cache.direct``/``no-flush``,
  ``detect_zeroes``, and the strong options inside a ``json:`` filename (spec §1.6);
  query results win over remembered values, because other clients and jobs change them.

Children are passed by reference (their current name), which keeps them as they are;
a ``backing`` member is always given when the node has a backing child or its header
names one (``backing is missing for …`` otherwise).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from engine.formats.backing_names import options_of_name
from engine.graph.drivers import BACKING_DRIVERS
from engine.graph.snapshot import GraphSnapshot, NodeInfo

#: Members that are children, never plain options.
CHILD_MEMBERS = ("file", "backing", "image", "data-file", "target", "log", "test", "raw")
_QUERY_OWNED = ("read-only", "cache", "detect-zeroes", "node-name", "driver")


def json_filename_options(filename: str) -> dict[str, Any]:
    """The strong (non-child) options inside a ``json:{...}`` filename, else {}."""
    return {k: v for k, v in options_of_name(filename).items()
            if k != "driver" and k not in CHILD_MEMBERS and not isinstance(v, dict)}


def current_options(
    graph: GraphSnapshot, key: str, known: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The options that reopen ``key`` exactly as it is now (children by reference)."""
    node = graph.nodes[key]
    base = (known or {}).get(node.name)
    opts: dict[str, Any] = {}
    if base is not None and base.get("driver") == node.driver:
        opts = {k: copy.deepcopy(v) for k, v in base.items()
                if k not in _QUERY_OWNED and k not in CHILD_MEMBERS}
    opts.update(json_filename_options(node.filename))
    result: dict[str, Any] = {"driver": node.driver, "node-name": node.name}
    result.update(opts)
    result.update(_flags(node))
    if node.driver == "file" and "filename" not in result:
        result["filename"] = node.filename
    for edge in graph.children(key):
        if edge.role in CHILD_MEMBERS and edge.role != "backing":
            result[edge.role] = graph.nodes[edge.child].name
    if node.driver in BACKING_DRIVERS:
        backing = graph.backing(key)
        if backing is not None:
            result["backing"] = graph.nodes[backing].name
        elif node.header_backing:
            result["backing"] = None
    return result


def _flags(node: NodeInfo) -> dict[str, Any]:
    """read-only, cache and detect-zeroes as the query reports them."""
    info = node.info
    flags: dict[str, Any] = {"read-only": node.read_only}
    cache = info.get("cache")
    if isinstance(cache, Mapping):
        flags["cache"] = {"direct": bool(cache.get("direct", False)),
                          "no-flush": bool(cache.get("no-flush", False))}
    dz = info.get("detect_zeroes")
    if isinstance(dz, str) and dz != "off":
        flags["detect-zeroes"] = dz
        if dz == "unmap":           # only allowed with discard=unmap, so that is what it has
            flags["discard"] = "unmap"
    return flags


def inline_options(graph: GraphSnapshot, key: str) -> dict[str, Any] | None:
    """Options that re-create ``key`` inline (for undoing a delete), or None if unknown.

    Only plain ``file`` protocol nodes can be re-created from query results alone.
    """
    node = graph.nodes[key]
    if node.driver != "file" or node.filename.startswith("json:") or not node.filename:
        return None
    opts: dict[str, Any] = {"driver": "file", "filename": node.filename}
    if not node.auto_named:
        opts["node-name"] = node.name
    return opts

"""A node's filename as QEMU reports it: a plain name or a ``json:{...}`` pseudo-name.

QEMU 7.2's rules (``bdrv_refresh_filename``), children first:

* an *implicit* node (an auto-named job filter) copies everything from its child;
* the node's *full options* are ``driver``, ``filename`` and the driver's strong
  options where given (:mod:`engine.graph.drivers`), plus one member per child with
  that child's full options — the backing only when it is *overridden* (the attached
  backing's filename differs from ``auto_backing_file``, or nothing is attached though
  the header names a backing file: then ``"backing": null``);
* the *exact* filename: a protocol node's own (``file``: its ``filename``; ``null-co``:
  ``null-co://`` without strong options); ``commit_top``/``mirror_top``: their backing's
  filename; a format node inherits its ``file`` child's exact filename when that child is
  a protocol node, no strong option is given and the backing is not overridden; filters
  have none;
* the filename is the exact one, else ``json:`` + the full options as QEMU prints JSON,
  cut to QEMU's PATH_MAX buffer (4095 characters, the last three ``...``).

Full options are kept as ropes (a node's text refers to its children's), so a deep
chain costs linear time and memory and a filename is cut without building the whole
text. Everything here is iterative: chains may be thousands of nodes deep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.formats.backing_names import has_protocol, path_combine
from engine.graph.nodes import Node
from engine.qdict import qdict_order

#: QEMU's filename buffer (PATH_MAX): at most 4095 characters and the NUL
PATH_MAX = 4096


@dataclass(eq=False)
class Rope:
    """JSON text made of strings and other ropes (a child's full options)."""

    parts: list[str | Rope] = field(default_factory=list)
    length: int = 0

    def add(self, part: str | Rope) -> None:
        self.parts.append(part)
        self.length += part.length if isinstance(part, Rope) else len(part)

    def prefix(self, limit: int) -> str:
        """The first ``limit`` characters (all of them when shorter), iteratively."""
        out: list[str] = []
        left = limit
        stack = [iter(self.parts)]
        while stack and left > 0:
            part = next(stack[-1], None)
            if part is None:
                stack.pop()
            elif isinstance(part, Rope):
                stack.append(iter(part.parts))
            else:
                out.append(part[:left])
                left -= len(part)
        return "".join(out)

    def text(self) -> str:
        return self.prefix(self.length)


@dataclass(frozen=True, eq=False)
class NodeNames:
    """What QEMU's refresh computes for one node."""

    filename: str
    exact: str | None
    options: Rope


class Names(dict[str, NodeNames]):
    """Computed names by node name (valid until the graph changes)."""


def all_filenames(graph: Any) -> Names:
    """Every node's names (``graph``: anything with ``nodes``), children first."""
    names = Names()
    for node in graph.nodes.values():
        _compute_below(node, names)
    return names


def filename(node: Node, names: dict[str, Any] | None = None) -> str:
    """The node's reported filename (``names`` caches results across calls)."""
    return names_of(node, names).filename


def exact_filename(node: Node, names: dict[str, Any] | None = None) -> str | None:
    return names_of(node, names).exact


def full_options(node: Node, names: dict[str, Any] | None = None) -> dict[str, Any]:
    """The node's full options as a dict (the structure behind a ``json:`` name)."""
    value: dict[str, Any] = json.loads(names_of(node, names).options.text())
    return value


def names_of(node: Node, names: dict[str, Any] | None = None) -> NodeNames:
    cache: dict[str, Any] = names if names is not None else {}
    found = cache.get(node.name)
    if not isinstance(found, NodeNames):
        _compute_below(node, cache)
        found = cache[node.name]
    return found


def backing_overridden(node: Node, names: dict[str, Any] | None = None) -> bool:
    backing = node.child("backing")
    if backing is not None:
        return filename(backing, names) != (node.auto_backing_file or "")
    return bool(node.auto_backing_file)


def _compute_below(top: Node, names: dict[str, Any]) -> None:
    """Fill ``names`` for ``top`` and every node below it, children first (iterative)."""
    if isinstance(names.get(top.name), NodeNames):
        return
    stack: list[tuple[Node, bool]] = [(top, False)]
    while stack:
        node, ready = stack.pop()
        if isinstance(names.get(node.name), NodeNames):
            continue
        if ready:
            names[node.name] = _refresh(node, names)
            continue
        stack.append((node, True))
        stack.extend((link.child, False) for link in node.children.values()
                     if not isinstance(names.get(link.child.name), NodeNames))


def _refresh(node: Node, names: dict[str, Any]) -> NodeNames:
    """One node, its children already computed."""
    if node.implicit and len(node.children) == 1:
        only = next(iter(node.children.values())).child
        return names[only.name]  # type: ignore[no-any-return]
    spec = node.spec
    overridden = _overridden(node, names)
    members: dict[str, str | Rope] = {"driver": json.dumps(node.driver)}
    strong = False
    for opt in ("filename", *spec.strong_options):
        if opt in node.options and opt not in members:
            members[opt] = json.dumps(node.options[opt])
            strong = strong or opt != "filename"
    listed: list[Rope] = []
    prefix = f"{spec.child_list}." if spec.child_list else None
    for role, link in reversed(node.children.items()):
        if prefix is not None and role.startswith(prefix):
            listed.insert(0, names[link.child.name].options)
        elif role != "backing" or overridden:
            members[role] = names[link.child.name].options
    if spec.child_list:     # quorum: its children's options as one gap-less list
        members[spec.child_list] = _list_rope(listed)
    if overridden and node.child("backing") is None:
        members["backing"] = "null"
    options = _rope(members)
    exact = _exact(node, names, generate_json=strong or overridden)
    return NodeNames(exact if exact else _json_filename(options), exact, options)


def _overridden(node: Node, names: dict[str, Any]) -> bool:
    backing = node.child("backing")
    if backing is not None:
        return bool(names[backing.name].filename != (node.auto_backing_file or ""))
    return bool(node.auto_backing_file)


def _exact(node: Node, names: dict[str, Any], *, generate_json: bool) -> str | None:
    spec = node.spec
    if spec.is_protocol:
        if node.driver in ("null-co", "null-aio"):
            return None if generate_json else f"{node.driver}://"
        value = node.options.get("filename")
        return str(value) if value is not None else None
    if spec.own_filename:
        below = node.child(spec.filtered_role or "backing")
        return names[below.name].filename if below is not None else None
    if spec.is_filter or generate_json:
        return None
    primary = node.child("file")
    if primary is None or not primary.spec.is_protocol:
        return None
    return names[primary.name].exact  # type: ignore[no-any-return]


def _rope(members: dict[str, str | Rope]) -> Rope:
    rope = Rope()
    rope.add("{")
    for i, key in enumerate(qdict_order(members)):
        rope.add(("" if i == 0 else ", ") + json.dumps(key) + ": ")
        rope.add(members[key])
    rope.add("}")
    return rope


def _list_rope(items: list[Rope]) -> Rope:
    rope = Rope()
    rope.add("[")
    for i, item in enumerate(items):
        if i:
            rope.add(", ")
        rope.add(item)
    rope.add("]")
    return rope


def _json_filename(options: Rope) -> str:
    if len("json:") + options.length < PATH_MAX:
        return "json:" + options.text()
    return ("json:" + options.prefix(PATH_MAX - 4 - len("json:")))[:PATH_MAX - 4] + "..."


def dirname(node: Node, names: dict[str, Any] | None = None) -> str:
    """QEMU's ``bdrv_dirname``: the directory part of the protocol node's exact filename
    below ``node`` (following primary children); ValueError with QEMU's text without one."""
    current = node
    while True:
        role = current.spec.filtered_role or "file"
        primary = current.child(role) if not current.spec.is_protocol else None
        if primary is None:
            break
        current = primary
    exact = exact_filename(current, names)
    if not exact:
        raise ValueError(f"Cannot generate a base directory for {current.driver} nodes")
    return path_combine(exact, "")


def full_backing_name(node: Node, name: str | None = None,
                      names: dict[str, Any] | None = None) -> str | None:
    """A header backing name as QEMU opens it: absolute and protocol names (``json:``
    too) as they are, relative ones after :func:`dirname` (ValueError without one)."""
    name = node.header_backing if name is None else name
    if not name:
        return None
    if name.startswith("/") or has_protocol(name):
        return name
    return dirname(node, names) + name

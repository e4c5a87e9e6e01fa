"""``blockdev-reopen`` as a transaction over the live graph.

1. *Queue*: every entry names a node (``node-name not specified`` /
   ``Failed to find node with node-name='X'``); nested child dicts queue the existing
   inline children they describe; inline children not described by a dict are queued
   too, to follow their parent's explicit ``read-only``. The same node listed twice: the later
   options win (QEMU 7.2 accepts it).
2. *Prepare*, in queue order, each entry against the graph *as changed by the
   earlier entries*: the checks of :mod:`engine.graph.rules` in QEMU's order, then the
   change itself (new links, read-only flag, options reset to defaults when omitted).
3. *Permissions* are recomputed for everything touched and checked as a whole.
4. *Commit* (images reopened read-write/read-only, replaced children released) — or,
   on any error, roll back every change: graph, options, permissions, open files and
   the auto-name counter are exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.graph import rules
from engine.graph.model import BlockGraph, Node
from engine.graph.opening import check_raw_window
from engine.qdict import qdict_order

_GENERIC_KEYS = frozenset({"driver", "node-name", "read-only", "auto-read-only", "cache",
                           "force-share", "discard", "detect-zeroes", "file", "backing"})
_MISSING = object()


@dataclass(eq=False)
class Entry:
    node: Node
    #: The options given; None for an inline child that only follows its parent.
    opts: dict[str, Any] | None
    parent: Entry | None = None
    role: str | None = None


def reopen(graph: BlockGraph, options_list: list[dict[str, Any]]) -> None:
    """Reopen every node of ``options_list`` at once, or none (raises RuleViolation /
    GraphError with QEMU's text)."""
    if not options_list:
        return
    named = [graph.find(o["node-name"]) for o in options_list if "node-name" in o]
    with graph.drained([n for n in named if n is not None]), \
            graph.transaction(restore_names=True):
        queue = build_queue(graph, options_list)
        seeds: list[Node] = []
        for entry in queue:
            if entry.opts is None:
                _follow_parent(graph, entry, seeds)
            else:
                _prepare(graph, entry, seeds)
        graph.refresh_perms(_unique(seeds + [e.node for e in queue]))


def build_queue(graph: BlockGraph, options_list: list[dict[str, Any]]) -> list[Entry]:
    queue: dict[str, Entry] = {}
    for opts in options_list:
        if "node-name" not in opts:
            raise rules.NodeNameMissing()
        name = opts["node-name"]
        node = graph.find(name)
        if node is None:
            raise rules.NodeNotFound(name)
        _enqueue(queue, node, opts, None, None)
    return list(queue.values())


def _enqueue(queue: dict[str, Entry], node: Node, opts: dict[str, Any] | None,
             parent: Entry | None, role: str | None) -> None:
    """Queue ``node`` and, depth first, the children that inherit from it (QEMU's
    bdrv_reopen_queue_child, with an explicit stack: options may nest deeply)."""
    work: list[tuple[Node, dict[str, Any] | None, Entry | None, str | None]] = [
        (node, opts, parent, role)]
    while work:
        node, opts, parent, role = work.pop()
        entry = queue.get(node.name)
        if entry is None:
            entry = queue[node.name] = Entry(node, opts, parent, role)
        elif opts is None:
            continue
        else:
            entry.opts, entry.parent, entry.role = opts, parent, role
        children: list[tuple[Node, dict[str, Any] | None, Entry, str]] = []
        for child_role, link in reversed(list(node.children.items())):
            if not link.inherits:
                continue
            value = opts.get(child_role, _MISSING) if opts is not None else _MISSING
            if isinstance(value, dict):
                children.append((link.child, value, entry, child_role))
            elif value is _MISSING or value == link.child.name:
                children.append((link.child, None, entry, child_role))
        work.extend(reversed(children))


def _follow_parent(graph: BlockGraph, entry: Entry, seeds: list[Node]) -> None:
    """An inline child not described by a dict (given by reference, or not named at
    all) keeps its old options and inherits only what its parent states (QEMU's
    ``keep_old_opts``): its own explicit ``read-only`` wins; a ``backing`` child
    defaults to read-only; a ``file`` child takes the ``read-only`` its parent's options
    name explicitly, and otherwise stays as it is — so it follows ``read-only: true``
    and ``read-only: false`` but not a reopen that leaves ``read-only`` out."""
    parent, node = entry.parent, entry.node
    if parent is None or node.read_only_explicit:
        return
    if entry.role == "backing":
        want = True
    elif parent.opts is None:                 # the parent follows too: its final state
        want = parent.node.read_only
    elif "read-only" in parent.opts:
        want = bool(parent.opts["read-only"])
    else:
        return
    if want != node.read_only:
        graph.set_read_only(node, want)
        seeds.append(node)


def _default_read_only(entry: Entry) -> bool:
    if entry.parent is None:
        return False
    if entry.role == "backing":
        return True
    return entry.parent.node.read_only


def _prepare(graph: BlockGraph, entry: Entry, seeds: list[Node]) -> None:
    """One node's reopen, QEMU's checks in QEMU's order, then the change itself."""
    node, opts = entry.node, entry.opts
    assert opts is not None
    detect_zeroes = opts.get("detect-zeroes", "off")
    discard = opts.get("discard", "ignore")
    if detect_zeroes == "unmap" and discard != "unmap":
        raise rules.DetectZeroesUnmap()
    rules.check_reopen_driver(graph, node.name)
    for key in (*rules.IMMUTABLE_OPTIONS.get(node.driver, ()),
                *node.spec.unresettable_options):
        if key in node.options and key not in opts:
            raise rules.OptionReset(key)
    if node.driver == "qcow2":
        _check_qcow2_options(node, opts)
    if node.driver == "raw":     # against the file child it has before the reopen
        check_raw_window(node, {k: v for k, v in opts.items() if k in ("offset", "size")})
    if node.spec.io is not None:
        refusal = node.spec.io.option_error(graph.io, opts)
        if refusal is not None:
            raise rules.RuleViolation(refusal)
    rules.check_backing_given(graph, node.name, "backing" in opts)
    for role in ("backing", "file"):
        value = opts.get(role)
        if role in opts and not isinstance(value, dict):
            _relink(graph, node, role, value, seeds)
    changed = _first_changed(node, opts)
    if changed is not None:
        raise rules.OptionChange(changed)

    read_only = bool(opts["read-only"]) if "read-only" in opts else _default_read_only(entry)
    graph.set_read_only(node, read_only)
    graph.set(node, "read_only_explicit", "read-only" in opts)
    graph.set(node, "detect_zeroes", detect_zeroes)
    graph.set(node, "discard", discard)
    cache = opts.get("cache", {})
    graph.set(node, "cache_direct", bool(cache.get("direct", False)))
    graph.set(node, "cache_no_flush", bool(cache.get("no-flush", False)))
    graph.set(node, "options", {k: v for k, v in opts.items() if k not in _GENERIC_KEYS})
    seeds.append(node)


def _relink(graph: BlockGraph, node: Node, role: str, value: str | None,
            seeds: list[Node]) -> None:
    """A ``backing``/``file`` reference in the options: point the link at that node."""
    new = None if value is None else rules.resolve_reference(graph, value)
    if rules.check_set_child(graph, node.name, role, new):
        link = node.children.get(role)
        old = link.child if link is not None else None
        new_node = graph.find(new) if new is not None else None
        graph.replace_child(node, role, new_node)
        seeds.extend(n for n in (node, new_node, old) if n is not None)


def _first_changed(node: Node, opts: dict[str, Any]) -> str | None:
    """The option QEMU names in ``Cannot change the option 'X'``, or None.

    QEMU compares every option that nothing consumed with the node's own, in the order
    of its options dictionary: the node's name, driver and immutable options, and the
    flattened options of a child that does not inherit from the node (options for a
    child the reopen does not queue, such as a filter a job inserted).
    """
    differs: dict[str, bool] = {}
    for role, value in opts.items():
        link = node.children.get(role)
        is_child = role in ("file", "backing") or link is not None
        if is_child and isinstance(value, dict) and (link is None or not link.inherits):
            differs.update((key, True) for key in flat_keys(role, value))
    if "node-name" in opts:
        differs["node-name"] = node.auto_named or opts["node-name"] != node.name
    differs["driver"] = opts["driver"] != node.driver
    for key in rules.IMMUTABLE_OPTIONS.get(node.driver, ()):
        if key in opts:
            differs[key] = key not in node.options or opts[key] != node.options[key]
    if "force-share" in opts or node.force_share:
        differs["force-share"] = bool(opts.get("force-share", False)) != node.force_share
    return next((k for k in qdict_order(differs) if differs[k]), None)


def flat_keys(prefix: str, value: dict[str, Any]) -> list[str]:
    """QEMU's flattened keys of a nested options dict (``backing.file.driver`` ...)."""
    out: list[str] = []
    work = [(prefix, value)]
    while work:
        path, current = work.pop()
        for key, item in current.items():
            if isinstance(item, dict) and item:
                work.append((f"{path}.{key}", item))
            else:
                out.append(f"{path}.{key}")
    return out


def _check_qcow2_options(node: Node, opts: dict[str, Any]) -> None:
    cluster = getattr(node.image, "cluster_size", 65536) or 65536
    entry_size = opts.get("l2-cache-entry-size")
    if entry_size is not None and (entry_size < 512 or entry_size > cluster
                                   or entry_size & (entry_size - 1)):
        raise rules.RuleViolation(
            "L2 cache entry size must be a power of two between 512 and the cluster size "
            f"({cluster})")
    if ("cache-size" in opts and "l2-cache-size" in opts
            and opts["l2-cache-size"] > opts["cache-size"]):
        raise rules.RuleViolation("l2-cache-size may not exceed cache-size")


def _unique(nodes: list[Node]) -> list[Node]:
    seen: set[int] = set()
    out = []
    for n in nodes:
        if id(n) not in seen:
            seen.add(id(n))
            out.append(n)
    return out

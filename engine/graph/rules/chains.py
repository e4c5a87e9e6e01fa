"""Finding nodes and walking backing chains on a graph view, as QEMU's rules do.

``lookup_bs`` is QEMU's bdrv_lookup_bs; the chain walks follow
``bdrv_filter_or_cow_bs`` (a filter's filtered child, else the backing child); the
operation blockers are QEMU's ``Node 'x' is busy: ...``. All of it reads only the
view (:mod:`engine.graph.view`), so the engine and the editor's preflight agree.
"""

from __future__ import annotations

import os

import networkx as nx

from engine.graph import drivers
from engine.graph.rules.errors import NodeBusy, NodeNotFound, ReferenceNotFound, RuleViolation
from engine.graph.view import GraphView

#: operations a backing link does not block on the backing node (QEMU unblocks them)
BACKING_UNBLOCKED = frozenset({"stream", "commit-target", "backup-source", "backup-target"})
#: Drivers QEMU treats as filters of one child (``is_filter``), from the driver table.
FILTER_DRIVERS = drivers.FILTER_DRIVERS
#: How a rule names a node QEMU is about to create and name itself (``#block`` and
#: digits QEMU draws at random): a job's filter, an overlay.
NEW_AUTO_NAME = "#blockNNN"


def lookup_bs(view: GraphView, device: str | None, node_name: str | None) -> str:
    """QEMU's bdrv_lookup_bs: a BlockBackend's medium by its name, else a node by name."""
    if device is not None:
        info = view.node_info(f"backend:{device}")
        if info is not None and info.kind == "block-backend":
            root = view.child(info.key, "root")
            if root is None:
                raise RuleViolation(f"Device '{device}' has no medium")
            return root
    if node_name is not None:
        info = view.node_info(node_name)
        if info is not None and info.kind == "block-node":
            return node_name
    raise ReferenceNotFound(node_name or "", device or "")


def find_node(view: GraphView, name: str) -> str:
    """The key of the block node ``name`` or :class:`NodeNotFound` (reopen's lookup)."""
    info = view.node_info(name)
    if info is None or info.kind != "block-node":
        raise NodeNotFound(name)
    return name


def resolve_reference(view: GraphView, name: str) -> str:
    """A child reference in reopen options: an existing node or ReferenceNotFound."""
    info = view.node_info(name)
    if info is None or info.kind != "block-node":
        raise ReferenceNotFound(name)
    return name


def driver_of(view: GraphView, key: str) -> str:
    info = view.node_info(key)
    return info.driver if info is not None else ""


def skip_implicit(view: GraphView, key: str | None) -> str | None:
    """Below any implicit (auto-named job) filters starting at ``key``."""
    while key is not None:
        info = view.node_info(key)
        if info is None or not info.implicit:
            return key
        key = view.child(key, "file") or view.child(key, "backing")
    return key


def reaches(view: GraphView, src: str, dst: str) -> bool:
    """Is ``dst`` ``src`` or one of its descendants (any role)?"""
    if src == dst:
        return True
    g = view.nx()
    if src not in g or dst not in g:
        return False
    return bool(nx.has_path(g, src, dst))


def filter_or_cow(view: GraphView, key: str | None) -> str | None:
    """The next node down the chain: a filter's filtered child, else the backing child."""
    if key is None:
        return None
    role = drivers.filtered_role(driver_of(view, key))
    return view.child(key, role) if role is not None else view.child(key, "backing")


def is_filter(view: GraphView, key: str) -> bool:
    return drivers.filtered_role(driver_of(view, key)) is not None


def skip_filters(view: GraphView, key: str | None) -> str | None:
    while key is not None and is_filter(view, key):
        key = filter_or_cow(view, key)
    return key


def walk(view: GraphView, top: str | None, stop: str | None = None) -> list[str]:
    """``top`` and every node below it (filters too) down to ``stop`` (excluded)."""
    out: list[str] = []
    key = top
    while key is not None and key != stop and key not in out:
        out.append(key)
        key = filter_or_cow(view, key)
    return out


def chain_contains(view: GraphView, top: str, target: str) -> bool:
    return target in walk(view, top)


def backing_chain_next(view: GraphView, key: str | None) -> str | None:
    """The next data layer down (QEMU's bdrv_backing_chain_next): filters skipped on
    both sides of a backing link."""
    key = skip_filters(view, key)
    if key is None or not drivers.cow(driver_of(view, key)):
        return None
    return skip_filters(view, view.child(key, "backing"))


def find_overlay(view: GraphView, active: str, base: str | None) -> str | None:
    """The data layer whose next layer down is ``base``, filters skipped on both
    (QEMU's bdrv_find_overlay); ``base`` None: the bottom layer of the chain."""
    target = skip_filters(view, base) if base is not None else None
    key = skip_filters(view, active)
    seen: set[str] = set()
    while key is not None and key not in seen:
        seen.add(key)
        nxt = backing_chain_next(view, key)
        if nxt == target:
            return key
        key = nxt
    return None


def bottom_of(view: GraphView, key: str) -> str:
    """The last node of the chain below ``key``, filters skipped (QEMU's bdrv_find_base)."""
    chain = [k for k in walk(view, key) if not is_filter(view, k)]
    return chain[-1] if chain else key


def is_root(view: GraphView, key: str) -> bool:
    """Only BlockBackends use it (QEMU's bdrv_is_root_node)."""
    return all(e.parent.startswith("backend:") for e in view.parents(key))


def device_name(view: GraphView, key: str) -> str:
    """QEMU's bdrv_get_device_name: the name of a BlockBackend on the node, else ''."""
    for e in view.parents(key):
        if e.parent.startswith("backend:"):
            info = view.node_info(e.parent)
            name = info.info.get("device", info.name) if info is not None else ""
            if name and not name.startswith("#"):
                return str(name)
    return ""


def cumulative_perm(view: GraphView, key: str) -> frozenset[str]:
    """What the node's users take from it (the permissions of its parent links)."""
    return frozenset(p for e in view.parents(key) for p in e.perm)


def find_backing_image(view: GraphView, top: str, name: str) -> str | None:
    """A node below ``top`` named by ``name`` (QEMU's bdrv_find_backing_image).

    The name matches an overlay's header string as written, or — resolved against
    the overlay's directory when relative — the backing node's filename.
    """
    for overlay in walk(view, top):
        below = filter_or_cow(view, overlay)
        if below is None:
            return None
        if is_filter(view, below):
            continue
        info = view.node_info(overlay)
        if info is not None and info.header_backing == name:
            return below
        target = _filename(view, below)
        if target and not target.startswith("json:"):
            wanted = name if os.path.isabs(name) else \
                os.path.join(os.path.dirname(_filename(view, overlay)), name)
            if os.path.realpath(wanted) == os.path.realpath(target):
                return below
    return None


def _filename(view: GraphView, key: str) -> str:
    info = view.node_info(key)
    return info.filename if info is not None else ""


def first_blocker(view: GraphView, node: str, op: str = "drive-del") -> str | None:
    """The reason of the newest user that blocks ``op`` on ``node``: a block job (every
    node a job holds is blocked for everything) or a node using it as its backing file
    (which leaves a few operations alone)."""
    for e in view.parents(node):
        if e.parent.startswith("job:"):
            job = view.node_info(e.parent)
            return f"block device is in use by block job: {job.driver if job else ''}"
        if e.role == "backing" and not e.parent.startswith("backend:") and \
                op not in BACKING_UNBLOCKED:
            return f"node is used as backing hd of '{e.parent}'"
    return None


def check_op(view: GraphView, node: str, op: str) -> None:
    """QEMU's bdrv_op_is_blocked: ``Node 'x' is busy: ...`` when something blocks ``op``."""
    reason = first_blocker(view, node, op)
    if reason is not None:
        raise NodeBusy(node, reason)

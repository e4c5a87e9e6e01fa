"""QEMU 7.2's rules for changing a block graph, as pure functions over a graph view.

One module serves two callers:

* the bundled engine, before it changes its live graph (``blockdev-reopen``,
  ``blockdev-del``...), and
* the editor's preflight, on a :class:`~engine.graph.snapshot.GraphSnapshot` built
  from a remote QEMU's query replies — while the user drags a link, so the checks
  are cheap (a reachability test with networkx, no copies of the graph).

Every refusal is a :class:`RuleViolation` subclass whose ``str()`` is QEMU's exact
error text (``desc`` of a ``GenericError``). Functions take a :class:`GraphView`
and node keys (node names) and return normally when the change is allowed.

No Qt, no I/O: this module only reads the view.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

import networkx as nx

from engine.graph import perms as P
from engine.graph.snapshot import EdgeInfo, NodeInfo
from engine.graph.view import GraphView

#: Drivers with a ``backing`` option (COW formats).
BACKING_DRIVERS = frozenset({"qcow2", "qcow", "qed", "vmdk"})
#: Drivers that support blockdev-reopen in QEMU 7.2.
REOPEN_DRIVERS = frozenset({"file", "host_device", "host_cdrom", "qcow2", "qcow", "qed",
                            "vmdk", "vdi", "vhdx", "vpc", "raw", "null-co", "null-aio",
                            "throttle", "preallocate", "blkdebug"})
#: Child roles a reopen may point at another node.
REPLACEABLE_ROLES = ("file", "backing")
#: Options each driver cannot change on reopen (and cannot reset to the default).
IMMUTABLE_OPTIONS: dict[str, tuple[str, ...]] = {
    "file": ("filename", "locking", "aio", "aio-max-batch", "pr-manager", "drop-cache"),
    "host_device": ("filename", "locking", "aio", "aio-max-batch", "pr-manager"),
    "null-co": ("size", "latency-ns", "read-zeroes"),
    "null-aio": ("size", "latency-ns", "read-zeroes"),
}


#: How a rule names a node QEMU is about to create and name itself (``#block`` and
#: digits QEMU draws at random): a job's filter, an overlay.
NEW_AUTO_NAME = "#blockNNN"


class RuleViolation(Exception):
    """A change QEMU would refuse; ``str()`` is QEMU's text (class GenericError)."""

    error_class = "GenericError"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class NodeNotFound(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Failed to find node with node-name='{name}'")
        self.name = name


class ReferenceNotFound(RuleViolation):
    """A child given by name that does not exist."""

    def __init__(self, name: str, device: str = "") -> None:
        super().__init__(f"Cannot find device='{device}' nor node-name='{name}'")
        self.name = name


class CycleViolation(RuleViolation):
    def __init__(self, child: str, role: str, parent: str) -> None:
        super().__init__(f"Making '{child}' a {role} child of '{parent}' would create a cycle")


class FrozenLink(RuleViolation):
    def __init__(self, role: str, parent: str, child: str) -> None:
        super().__init__(f"Cannot change frozen '{role}' link from '{parent}' to '{child}'")


class ImplicitChild(RuleViolation):
    def __init__(self, role: str, parent: str) -> None:
        super().__init__(f"Cannot replace implicit {role} child of {parent}")


class BackingMissing(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"backing is missing for '{name}'")


class NoBackingSupport(RuleViolation):
    def __init__(self, driver: str, name: str) -> None:
        super().__init__(f"Driver '{driver}' of node '{name}' does not support backing files")


class ReopenUnsupported(RuleViolation):
    def __init__(self, driver: str, name: str) -> None:
        super().__init__(
            f"Block format '{driver}' used by node '{name}' does not support reopening files")


class OptionChange(RuleViolation):
    """An option that cannot change on reopen (``node-name``, ``driver``, ...)."""

    def __init__(self, option: str) -> None:
        super().__init__(f"Cannot change the option '{option}'")
        self.option = option


class OptionReset(RuleViolation):
    def __init__(self, option: str) -> None:
        super().__init__(f"Option '{option}' cannot be reset to its default value")


class NodeNameMissing(RuleViolation):
    def __init__(self) -> None:
        super().__init__("node-name not specified")


class ReadOnlyWithWriters(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Read-only block node '{name}' cannot support read-write users")


class NodeReadOnly(RuleViolation):
    def __init__(self) -> None:
        super().__init__("Block node is read-only")


class DetectZeroesUnmap(RuleViolation):
    def __init__(self) -> None:
        super().__init__("setting detect-zeroes to unmap is not allowed without setting "
                         "discard operation to unmap")


class NodeInUse(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Node {name} is in use")


class NodeBusy(RuleViolation):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"Node '{name}' is busy: {reason}")


class NotMonitorOwned(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Node {name} is not owned by the monitor")


class BlockDeviceInUse(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Block device {name} is in use")


# -- lookups --------------------------------------------------------------------------
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
    return nx.has_path(g, src, dst)


# -- reopen rules ---------------------------------------------------------------------
def supports_reopen(driver: str) -> bool:
    return driver in REOPEN_DRIVERS


def check_reopen_driver(view: GraphView, node: str) -> None:
    info = view.node_info(node)
    if info is not None and not supports_reopen(info.driver):
        raise ReopenUnsupported(info.driver, node)


def check_backing_given(view: GraphView, node: str, given: bool) -> None:
    """Reopen options must name ``backing`` unless the node has no current backing
    child and no backing file in its image header."""
    info = view.node_info(node)
    if given or info is None or info.driver not in BACKING_DRIVERS:
        return
    if view.child(node, "backing") is not None or info.header_backing:
        raise BackingMissing(node)


def check_set_child(view: GraphView, node: str, role: str, new_child: str | None) -> bool:
    """May ``node``'s ``role`` link point at ``new_child`` (None: detach)?

    Returns False when nothing would change (the same child, or the node below an
    implicit filter that is the current child), True for an allowed change; raises a
    :class:`RuleViolation` otherwise. The checks and their order are QEMU's: cycle
    (when the new child is looked up), implicit child, filter without such a child,
    frozen link, backing support.
    """
    if new_child is not None and reaches(view, new_child, node):
        raise CycleViolation(new_child, role, node)
    old = view.child(node, role)
    if new_child == old:
        return False
    info = view.node_info(node)
    if old is not None:
        if skip_implicit(view, old) == new_child:
            return False
        old_info = view.node_info(old)
        if old_info is not None and old_info.implicit:
            raise ImplicitChild(role, node)
    elif info is not None and info.driver in FILTER_DRIVERS:
        raise RuleViolation(f"'{node}' is a {info.driver} filter node that does not "
                            f"support a {role} child")
    if old is not None:
        edge = view.edge(node, role)
        if edge is not None and edge.frozen:
            raise FrozenLink(role, node, old)
    if role == "backing" and info is not None and info.driver not in BACKING_DRIVERS \
            and info.driver not in FILTER_DRIVERS:
        raise NoBackingSupport(info.driver, node)
    return True


def check_set_backing(view: GraphView, node: str, new_backing: str | None) -> bool:
    """The editor's rebase/detach preflight: may ``node``'s backing become ``new_backing``?

    ``new_backing`` is a node key or None to detach. Raises :class:`RuleViolation`
    (e.g. :class:`CycleViolation`, :class:`FrozenLink`, :class:`ImplicitChild`,
    :class:`ReferenceNotFound`); returns whether anything would change.
    """
    find_node(view, node)
    if new_backing is not None:
        resolve_reference(view, new_backing)
    check_reopen_driver(view, node)
    return check_set_child(view, node, "backing", new_backing)


def check_read_only(view: GraphView, node: str, read_only: bool,
                    child_follows: bool = True) -> None:
    """Reopen ``node`` read-only or read-write: who would be left without permissions?

    Making it read-only fails while a parent holds ``write``/``write-unchanged``;
    making it read-write fails when its ``file`` child stays read-only
    (``child_follows`` False: the child was given by reference).
    """
    info = view.node_info(node)
    if info is None:
        raise NodeNotFound(node)
    if read_only and not info.read_only:
        for e in view.parents(node):
            if "write" in e.perm or "write-unchanged" in e.perm:
                raise ReadOnlyWithWriters(node)
    if not read_only and info.read_only and not child_follows:
        file_child = view.child(node, "file")
        child = view.node_info(file_child) if file_child else None
        if child is not None and child.read_only:
            raise NodeReadOnly()


def check_immutable(driver: str, current: dict[str, object], given: dict[str, object],
                    prefix: str = "") -> None:
    """Options that cannot change: a different value → OptionChange, an omitted one →
    OptionReset (QEMU checks omissions first)."""
    immutable = IMMUTABLE_OPTIONS.get(driver, ())
    for key in immutable:
        if key in current and key not in given:
            raise OptionReset(prefix + key)
    for key in immutable:
        if key in given and (key not in current or given[key] != current[key]):
            raise OptionChange(prefix + key)


# -- blockdev-del ---------------------------------------------------------------------
def check_delete(view: GraphView, node: str, *, monitor_owned: bool | None = None,
                 job_blockers: tuple[str, ...] | None = None) -> None:
    """Would ``blockdev-del`` of ``node`` be refused? QEMU's check order:
    unknown node, used by a BlockBackend, operation blockers (a job holding it, an
    overlay using it as backing; the most recent first), not monitor-owned (unknown
    from QMP: pass None), other node parents. ``job_blockers`` (job types) replaces
    the jobs the view shows."""
    info = view.node_info(node)
    if info is None or info.kind != "block-node":
        raise NodeNotFound(node)
    parents = view.parents(node)
    if any(e.parent.startswith("backend:") for e in parents):
        raise NodeInUse(node)
    if job_blockers is None:
        check_op(view, node, "drive-del")
    elif job_blockers:
        raise NodeBusy(node, f"block device is in use by block job: {job_blockers[0]}")
    for e in parents:
        if e.role == "backing" and not e.parent.startswith(("job:", "backend:")):
            raise NodeBusy(node, f"node is used as backing hd of '{e.parent}'")
    if monitor_owned is False:
        raise NotMonitorOwned(node)
    if any(not e.parent.startswith(("job:", "backend:")) for e in parents):
        raise BlockDeviceInUse(node)


# -- names, snapshots, stream and commit (the editor's preflight) ---------------------
class InvalidNodeName(RuleViolation):
    """A user-given node name QEMU rejects (``Invalid node-name: 'x'``, too long)."""


class DuplicateNodeName(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Duplicate nodes with node-name='{name}'")


class NotInChain(RuleViolation):
    """A base that is not below the streamed/committed node."""


class DeviceNotFound(RuleViolation):
    error_class = "DeviceNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Device '{name}' not found")


def check_reopen_by_name(view: GraphView, node: str) -> None:
    """Reopen names its node; an auto-generated name is not one of the node's options,
    so QEMU refuses it with ``Cannot change the option 'node-name'``."""
    find_node(view, node)
    if node.startswith("#"):
        raise OptionChange("node-name")


def check_new_node_name(view: GraphView, name: str) -> None:
    """A name for a node about to be added: valid (``names.check_node_name``) and free."""
    from engine.graph.names import check_node_name

    text = check_node_name(name)
    if text is not None:
        raise InvalidNodeName(text)
    if view.node_info(name) is not None:
        raise DuplicateNodeName(name)


def check_snapshot_node(view: GraphView, node: str) -> None:
    """``blockdev-snapshot``'s checks on ``node`` (spec §4.1 1–2): it exists and no
    job or overlay blocks it."""
    _lookup(view, node, node)
    check_op(view, node, "external-snapshot")


def check_snapshot(view: GraphView, node: str, overlay: str = NEW_AUTO_NAME) -> None:
    """``blockdev-snapshot node overlay`` with a new, unused qcow2 ``overlay``: the
    node's checks, then the overlay taking over the node's parents (a frozen link
    refuses) and the permissions that follow."""
    check_snapshot_node(view, node)
    sim = PermissionSim(view)
    sim.add_node(NodeInfo(key=overlay, kind="block-node", name=overlay, driver="qcow2"))
    sim.attach(overlay, node, "backing")
    sim.replace_node(node, overlay)
    sim.refresh(overlay)


# -- reopen edits (the editor's link and read-only changes) --------------------------------
#: Drivers a graph may hold that QAPI's BlockdevDriver does not list (jobs' filters).
INTERNAL_DRIVERS = frozenset({"commit_top", "mirror_top"})


class Unexpected(RuleViolation):
    """QAPI refused the arguments before QEMU looked at the graph."""


KEEP = object()


def check_reopen_edit(view: GraphView, node: str, *, backing: object = KEEP,
                      read_only: bool | None = None, by_name: bool = True,
                      path: str = "options[0]", entry: str | None = None,
                      file_follows: bool = True, inline: Collection[str] = ()) -> None:
    """``blockdev-reopen`` changing ``node``'s backing link (a node key, None to
    detach, :data:`KEEP`) or its read-only flag, every other option as it is.

    ``by_name``: the entry names ``node``; otherwise it is reopened through a nested
    dict at ``path`` below the named ``entry`` (how auto-named nodes are reached).
    ``file_follows``: an auto-named ``file`` child goes along with a change to
    read-write (given as a nested dict). QEMU's order: arguments, the node's name, each
    node's options (driver support, the new backing link: lookup, cycle, implicit,
    frozen), the node-name an auto-named node cannot be given, then the permissions of
    the graph as changed.
    """
    info = view.node_info(node)
    if info is not None and info.driver in INTERNAL_DRIVERS:
        # a nested dict's driver is checked when QEMU reads the child's options
        where = f"{path}.driver" if by_name else "driver"
        raise Unexpected(f"Parameter '{where}' does not accept value '{info.driver}'")
    if backing is not KEEP and (info is None or info.driver not in BACKING_DRIVERS):
        raise Unexpected(f"Parameter '{path}.backing' is unexpected")
    find_node(view, entry if entry is not None and not by_name else node)
    if info is None:
        raise NodeNotFound(node)
    check_reopen_driver(view, node)
    new_backing: str | None = None
    if backing is not KEEP:
        new_backing = backing if isinstance(backing, str) else None
        if new_backing is not None:
            resolve_reference(view, new_backing)
        check_set_child(view, node, "backing", new_backing)
    if by_name and info.auto_named:
        raise OptionChange("node-name")
    sim = PermissionSim(view, inline)
    old_backing = view.child(node, "backing")
    if backing is not KEEP and skip_implicit(view, old_backing) != new_backing \
            and old_backing != new_backing:
        sim.replace_child(node, "backing", new_backing)
    if read_only is not None and read_only != bool(info.read_only):
        sim.set_read_only(node, read_only)
        file_child = view.child(node, "file")
        child = view.node_info(file_child) if file_child else None
        follows = (child is not None and (child.auto_named or child.key in inline)
                   if read_only else file_follows)
        if child is not None and bool(child.read_only) != read_only and follows:
            sim.set_read_only(child.key, read_only)
    sim.refresh(entry if entry is not None else node, node, old_backing)


def _job_of(view: GraphView, node: str) -> str | None:
    """The type of a block job holding ``node`` (its ``main``/``active`` node), if any."""
    for e in view.parents(node):
        if e.parent.startswith("job:") and e.role in ("main node", "active node"):
            info = view.node_info(e.parent)
            return info.driver if info is not None else ""
    return None


def _chain(view: GraphView, node: str) -> list[str]:
    """The nodes below ``node`` along backing links (implicit filters skipped)."""
    out: list[str] = []
    cur = skip_implicit(view, view.child(node, "backing"))
    while cur is not None and cur not in out:
        out.append(cur)
        cur = skip_implicit(view, view.child(cur, "backing"))
    return out


#: Drivers QEMU treats as filters of one child (``is_filter``).
FILTER_DRIVERS = frozenset({"blkdebug", "blklogwrites", "blkreplay", "blkverify", "commit_top",
                            "copy-before-write", "copy-on-read", "compress", "mirror_top",
                            "preallocate", "replication", "throttle"})
#: Operations a ``backing`` link does not block on its child (QEMU's op blockers).
_BACKING_ALLOWS = frozenset({"commit-target", "stream", "backup-source", "backup-target"})


# -- chains, as QEMU walks them -----------------------------------------------------------
def filter_or_cow(view: GraphView, key: str | None) -> str | None:
    """The next node down a chain: a filter's only child, or a format's backing."""
    if key is None:
        return None
    info = view.node_info(key)
    if info is None:
        return None
    if info.driver in FILTER_DRIVERS:
        return view.child(key, "backing") or view.child(key, "file")
    if info.driver in BACKING_DRIVERS:
        return view.child(key, "backing")
    return None


def skip_filters(view: GraphView, key: str | None) -> str | None:
    while key is not None:
        info = view.node_info(key)
        if info is None or info.driver not in FILTER_DRIVERS:
            return key
        key = view.child(key, "backing") or view.child(key, "file")
    return None


def chain_contains(view: GraphView, top: str, base: str) -> bool:
    """Is ``base`` ``top`` or below it along filter and backing links?"""
    cur: str | None = top
    seen: set[str] = set()
    while cur is not None and cur != base and cur not in seen:
        seen.add(cur)
        cur = filter_or_cow(view, cur)
    return cur == base


def backing_chain_next(view: GraphView, key: str | None) -> str | None:
    key = skip_filters(view, key)
    if key is None:
        return None
    info = view.node_info(key)
    cow = view.child(key, "backing") if info is not None and \
        info.driver in BACKING_DRIVERS else None
    return skip_filters(view, cow)


def find_overlay(view: GraphView, active: str, base: str | None) -> str | None:
    """The node whose next layer down is ``base`` (None: the bottom of the chain)."""
    target = skip_filters(view, base) if base is not None else None
    cur = skip_filters(view, active)
    seen: set[str] = set()
    while cur is not None and cur not in seen:
        seen.add(cur)
        nxt = backing_chain_next(view, cur)
        if nxt == target:
            return cur
        cur = nxt
    return None


def blockers(view: GraphView, node: str, op: str) -> list[str]:
    """Why ``op`` is blocked on ``node`` (QEMU's op blockers, most recent first): a job
    holding it, or an overlay using it as backing."""
    out: list[str] = []
    backing: list[str] = []
    for e in view.parents(node):
        if e.parent.startswith("job:"):
            info = view.node_info(e.parent)
            reason = f"block device is in use by block job: {info.driver if info else ''}"
            if reason not in out:
                out.append(reason)
        elif e.role == "backing" and not e.parent.startswith("backend:") \
                and op not in _BACKING_ALLOWS:
            backing.append(f"node is used as backing hd of '{e.parent}'")
    return out + backing


def check_op(view: GraphView, node: str, op: str) -> None:
    reasons = blockers(view, node, op)
    if reasons:
        raise NodeBusy(node, reasons[0])


def check_job_id(view: GraphView, job_id: str) -> None:
    """A new job's id: well formed and not taken (``query-block-jobs`` lists the ones in
    the graph)."""
    from engine.graph.names import check_job_id as malformed

    text = malformed(job_id)
    if text is not None:
        raise RuleViolation(text)
    if view.node_info(f"job:{job_id}") is not None:
        raise RuleViolation(f"Job ID '{job_id}' already in use")


def _lookup(view: GraphView, name: str, device: str = "") -> str:
    """``bdrv_lookup_bs``: a node by name (``device`` is the name tried as a device)."""
    info = view.node_info(name)
    if info is None or info.kind != "block-node":
        raise ReferenceNotFound(name, device)
    return name


def _size(view: GraphView, key: str) -> int:
    info = view.node_info(key)
    return int(info.virtual_size or 0) if info is not None else 0


# -- block-stream ---------------------------------------------------------------------------
def check_stream(view: GraphView, device: str, base: str | None,
                 job_id: str | None = None, *, inline: Collection[str] = ()) -> None:
    """``block-stream job-id device [base-node]``: every check QEMU 7.2 makes, in its
    order, including the permissions the job takes (a copy-on-read filter above
    ``device``, the job on it and on every node down to ``base``)."""
    _lookup(view, device, device)
    if base is not None:
        _lookup(view, base)
        if base == device or not chain_contains(view, device, base):
            raise NotInChain(f"Node '{base}' is not a backing image of '{device}'")
    cur: str | None = device
    while cur is not None and cur != base:
        check_op(view, cur, "stream")
        cur = filter_or_cow(view, cur)
    base_overlay = find_overlay(view, device, base)
    if base_overlay is None:
        raise NotInChain(f"'{base}' is not in the backing chain of '{device}'")
    above_base = base_overlay
    if base is not None and view.child(above_base, "backing") != base:
        above_base = view.child(above_base, "backing") or above_base
        while filter_or_cow(view, above_base) not in (base, None):
            above_base = filter_or_cow(view, above_base) or above_base
    sim = PermissionSim(view, inline)
    if sim.read_only(device):
        _check_freeze(view, device, above_base)
        sim.reopen_read_only(device, False)
        sim.refresh(device)
    cor = NEW_AUTO_NAME
    sim.add_node(NodeInfo(key=cor, kind="block-node", name=cor, driver="copy-on-read",
                          implicit=True))
    try:
        sim.attach(cor, device, "file")
        sim.refresh(device)
    except RuleViolation as exc:
        raise RuleViolation(f"Could not create node: {exc}") from exc
    try:
        sim.replace_node(device, cor)
        sim.refresh(cor, device)
    except RuleViolation as exc:
        raise RuleViolation(f"Could not replace node: {exc}") from exc
    if job_id is not None:
        check_job_id(view, job_id)
    job = f"job:{job_id or device}"
    sim.add_node(NodeInfo(key=job, kind="block-job", name=job_id or device, driver="stream"))
    _job_link(sim, job, cor, "main node", 0, P.ALL)
    _job_link(sim, "backend:#job", cor, "root", P.CONSISTENT_READ,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED | P.WRITE)
    _job_link(sim, job, device, "active node", 0,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED | P.WRITE)
    stop = filter_or_cow(view, above_base)
    cur = filter_or_cow(view, device)
    while cur is not None and cur != stop:
        _job_link(sim, job, cur, "intermediate node", 0,
                  P.CONSISTENT_READ | P.WRITE_UNCHANGED)
        cur = filter_or_cow(view, cur)


def _job_link(sim: PermissionSim, owner: str, node: str, role: str, perm: int,
              shared: int) -> None:
    """A job (or its block backend) takes ``node``: QEMU refreshes the node's permissions."""
    sim.attach(owner, node, role, perm=perm, shared=shared)
    sim.refresh(node)


def _check_freeze(view: GraphView, top: str, base: str | None) -> None:
    """``bdrv_freeze_backing_chain``: no link from ``top`` down to ``base`` may be frozen
    already, nor lead to a job's filter."""
    cur: str | None = top
    links: list[tuple[str, str, str]] = []
    while cur is not None and cur != base:
        nxt = filter_or_cow(view, cur)
        if nxt is None:
            break
        role = "backing" if view.child(cur, "backing") == nxt else "file"
        links.append((cur, role, nxt))
        cur = nxt
    for parent, role, child in links:
        edge = view.edge(parent, role)
        if edge is not None and edge.frozen:
            raise RuleViolation(f"Cannot change '{role}' link from '{parent}' to '{child}'")
    for _parent, role, child in links:
        info = view.node_info(child)
        if info is not None and info.driver in ("commit_top", "mirror_top"):
            raise RuleViolation(f"Cannot freeze '{role}' link to '{child}'")


# -- block-commit ---------------------------------------------------------------------------
def is_root(view: GraphView, key: str) -> bool:
    """Only block backends use it (QEMU's root node; a job's link is not a root link)."""
    return all(e.parent.startswith("backend:") for e in view.parents(key))


def commit_is_active(view: GraphView, device: str, top: str) -> bool:
    """QEMU commits actively (a mirror job that waits for ``job-complete``) when someone
    writes to ``top`` or ``top`` is the device's own layer."""
    perm = 0
    for e in view.parents(top):
        perm |= perm_bits(e.perm)
    return bool(perm & P.WRITE) or skip_filters(view, top) == skip_filters(view, device)


def check_commit(view: GraphView, device: str, top: str, base: str | None,
                 job_id: str | None = None, *, inline: Collection[str] = ()) -> None:
    """``block-commit job-id device [top-node] [base-node]``: every check QEMU 7.2 makes,
    in its order, including the permissions the job takes."""
    info = view.node_info(device)
    if info is None or info.kind != "block-node":
        raise DeviceNotFound(device)
    if not is_root(view, device):
        raise RuleViolation("Need a root block node")
    check_op(view, device, "commit-source")
    _lookup(view, top)
    if not chain_contains(view, device, top):
        raise NotInChain(f"'{top}' is not in this backing file chain")
    if base is not None:
        _lookup(view, base)
        if not chain_contains(view, top, base):
            raise NotInChain(f"'{base}' is not in this backing file chain")
    else:
        base = find_overlay(view, top, None)
        if base is None:
            raise RuleViolation("There is no backimg image")
    stop = filter_or_cow(view, base)
    cur: str | None = top
    while cur is not None and cur != stop:
        check_op(view, cur, "commit-target")
        cur = filter_or_cow(view, cur)
    if top == base:
        raise RuleViolation("cannot commit an image into itself")
    if commit_is_active(view, device, top):
        _check_active_commit(PermissionSim(view, inline), top, base, job_id or device)
        return
    overlay = find_overlay(view, device, top)
    if overlay is not None:
        check_op(view, overlay, "commit-target")
    _check_intermediate_commit(PermissionSim(view, inline), device, top, base, job_id)


def _check_intermediate_commit(sim: PermissionSim, device: str, top: str, base: str,
                               job_id: str | None) -> None:
    view = sim.view
    if skip_filters(view, top) == skip_filters(view, base):
        raise RuleViolation("Invalid files for merge: top and base are the same")
    if job_id is not None:
        check_job_id(view, job_id)
    job = f"job:{job_id or device}"
    sim.add_node(NodeInfo(key=job, kind="block-job", name=job_id or device, driver="commit"))
    _job_link(sim, job, device, "main node", 0, P.ALL)
    if sim.read_only(base):
        sim.reopen_read_only(base, False)
        sim.refresh(base)
    filt = NEW_AUTO_NAME
    sim.add_node(NodeInfo(key=filt, kind="block-node", name=filt, driver="commit_top",
                          read_only=True, implicit=True))
    sim.attach(filt, top, "backing")
    sim.replace_node(top, filt)
    sim.refresh(filt)
    filtered_base = view.child(find_overlay(view, top, base) or top, "backing")
    shared = P.WRITE_UNCHANGED | P.WRITE
    cur: str | None = top
    while cur is not None and cur != base:
        if cur == filtered_base:
            shared |= P.CONSISTENT_READ
        _job_link(sim, job, cur, "intermediate node", 0, shared)
        cur = filter_or_cow(view, cur)
    _check_freeze(sim_view(sim, view), filt, base)
    _job_link(sim, job, base, "base", 0, P.ALL)
    need = P.CONSISTENT_READ | P.WRITE | (P.RESIZE if _size(view, base) < _size(view, top)
                                          else 0)
    _job_link(sim, "backend:#commit-base", base, "root", need,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED)
    _job_link(sim, "backend:#commit-top", top, "root", 0, P.ALL)


def _check_active_commit(sim: PermissionSim, top: str, base: str, job_id: str) -> None:
    view = sim.view
    if sim.read_only(base):
        sim.reopen_read_only(base, False)
        sim.refresh(base)
    if skip_filters(view, top) == skip_filters(view, base):
        raise RuleViolation("Can't mirror node into itself")
    filt = NEW_AUTO_NAME
    sim.add_node(NodeInfo(key=filt, kind="block-node", name=filt, driver="mirror_top",
                          implicit=True))
    sim.attach(filt, top, "backing")
    sim.replace_node(top, filt)
    sim.refresh(filt)
    check_job_id(view, job_id)
    job = f"job:{job_id}"
    sim.add_node(NodeInfo(key=job, kind="block-job", name=job_id, driver="commit"))
    _job_link(sim, job, filt, "main node", P.CONSISTENT_READ,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED | P.WRITE)
    need = P.WRITE | (P.RESIZE if _size(view, base) < _size(view, top) else 0)
    _job_link(sim, "backend:#commit-target", base, "root", need,
              P.WRITE_UNCHANGED | P.CONSISTENT_READ | P.WRITE)
    _job_link(sim, job, top, "source", 0, P.WRITE_UNCHANGED | P.WRITE | P.CONSISTENT_READ)
    _job_link(sim, job, base, "target", 0, P.ALL)
    filtered_target = view.child(find_overlay(view, top, base) or top, "backing")
    shared = P.WRITE_UNCHANGED | P.WRITE
    cur = filter_or_cow(view, top)
    while cur is not None and cur != base:
        if cur == filtered_target:
            shared |= P.CONSISTENT_READ
        _job_link(sim, job, cur, "intermediate node", 0, shared)
        cur = filter_or_cow(view, cur)
    _check_freeze(sim_view(sim, view), filt, base)


def sim_view(sim: PermissionSim, view: GraphView) -> GraphView:
    """The graph as changed in ``sim`` (for chain walks after a filter went in)."""
    return _SimView(sim, view)


class _SimView:
    def __init__(self, sim: PermissionSim, view: GraphView) -> None:
        self.sim = sim
        self.view = view

    def node_info(self, key: str) -> NodeInfo | None:
        return self.sim.info(key)

    def child(self, key: str, role: str) -> str | None:
        return self.sim.child(key, role)

    def edge(self, parent: str, role: str) -> EdgeInfo | None:
        link = next((c for c in self.sim.children(parent) if c.role == role), None)
        if link is None:
            return None
        return EdgeInfo(parent, link.child, role, frozen=link.frozen)

    def children(self, key: str) -> list[EdgeInfo]:
        return [EdgeInfo(c.parent, c.child, c.role, frozen=c.frozen)
                for c in self.sim.children(key)]

    def parents(self, key: str) -> list[EdgeInfo]:
        return [EdgeInfo(c.parent, c.child, c.role, frozen=c.frozen)
                for c in self.sim.parents(key)]

    def nx(self) -> nx.MultiDiGraph:
        return self.view.nx()


# -- permissions between parents --------------------------------------------------------
#: QMP permission names -> bits
_PERM_BITS = {"consistent-read": P.CONSISTENT_READ, "write": P.WRITE,
              "write-unchanged": P.WRITE_UNCHANGED, "resize": P.RESIZE}


def perm_bits(names: tuple[str, ...] | list[str]) -> int:
    """The bits of a ``perm``/``shared-perm`` list as queries report it."""
    bits = 0
    for name in names:
        bits |= _PERM_BITS.get(name, 0)
    return bits


class PermissionConflict(RuleViolation):
    """Two parents of a node want what the other does not share (QEMU's text)."""

    def __init__(self, node: str, missing: int, wants: str, wants_role: str,
                 refuses: str, refuses_role: str) -> None:
        super().__init__(
            f"Permission conflict on node '{node}': permissions '{P.text_names(missing)}' "
            f"are both required by {wants} (uses node '{node}' as '{wants_role}' child) "
            f"and unshared by {refuses} (uses node '{node}' as '{refuses_role}' child).")


class LockConflict(RuleViolation):
    """An image lock another node on the same host file holds (``Failed to get ...``)."""


@dataclass(eq=False)
class Link:
    """A child link in a :class:`PermissionSim`: ``fixed`` links keep the permissions
    their owner (a device, an export, a job) chose; the others follow the parent."""

    parent: str
    child: str
    role: str
    perm: int
    shared: int
    fixed: bool
    frozen: bool = False


class PermissionSim:
    """A graph view with changes applied, whose permissions are refreshed as QEMU
    refreshes them: the nodes below a change, parents before children, each checked
    for conflicts between its parents, writers on a read-only node and image locks.

    The view is read lazily, node by node, so a check touches only the nodes below
    the change. Lists of parents and children are newest first, as QEMU keeps them;
    a link attached by a change goes first.
    """

    def __init__(self, view: GraphView, inline: Collection[str] = ()) -> None:
        self.view = view
        #: named nodes known to have been created inside their parent's options (QEMU's
        #: queries do not tell; auto-named nodes always are)
        self.inline = frozenset(inline)
        self._links: dict[tuple[str, str], Link] = {}
        self._parents: dict[str, list[Link]] = {}
        self._children: dict[str, list[Link]] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._read_only: dict[str, bool] = {}
        self._was_read_only: dict[str, bool] = {}

    # -- reading ------------------------------------------------------------------------
    def info(self, key: str) -> NodeInfo | None:
        return self._nodes.get(key) or self.view.node_info(key)

    def read_only(self, key: str) -> bool:
        if key in self._read_only:
            return self._read_only[key]
        info = self.info(key)
        return bool(info.read_only) if info is not None else False

    def _link(self, e: EdgeInfo) -> Link:
        link = self._links.get((e.parent, e.role))
        if link is None:
            fixed = e.parent.startswith(("backend:", "job:"))
            # a link without any permission listed is one whose permissions are not
            # known (a graph pieced together without the debug query): nothing held
            shared = perm_bits(e.shared_perm) if (e.perm or e.shared_perm) else P.ALL
            link = Link(e.parent, e.child, e.role, perm_bits(e.perm), shared, fixed,
                        e.frozen)
            self._links[(e.parent, e.role)] = link
        return link

    def parents(self, key: str) -> list[Link]:
        if key not in self._parents:
            self._parents[key] = [self._link(e) for e in self.view.parents(key)
                                  if self._links.get((e.parent, e.role)) is None
                                  or self._links[(e.parent, e.role)].child == key]
        return self._parents[key]

    def children(self, key: str) -> list[Link]:
        if key not in self._children:
            self._children[key] = [self._link(e) for e in self.view.children(key)]
        return self._children[key]

    def child(self, key: str, role: str) -> str | None:
        return next((c.child for c in self.children(key) if c.role == role), None)

    def cumulative(self, key: str) -> tuple[int, int]:
        perm, shared = 0, P.ALL
        for link in self.parents(key):
            perm |= link.perm
            shared &= link.shared
        return perm, shared

    # -- changes ------------------------------------------------------------------------
    def add_node(self, info: NodeInfo) -> None:
        self._nodes[info.key] = info
        self._parents.setdefault(info.key, [])
        self._children.setdefault(info.key, [])

    def attach(self, parent: str, child: str, role: str, *, perm: int | None = None,
               shared: int | None = None) -> Link:
        """A new link (``perm``/``shared`` given: fixed, as a job or a device takes it)."""
        self.parents(child)
        self.children(parent)
        fixed = perm is not None
        if not fixed:
            info = self.info(parent)
            pperm, pshared = self.cumulative(parent)
            perm, shared = child_link_perms(info, role, writable=not self.read_only(parent),
                                            parent_perm=pperm, parent_shared=pshared) \
                if info is not None and info.kind == "block-node" else (0, P.ALL)
        link = Link(parent, child, role, perm or 0, P.ALL if shared is None else shared,
                    fixed)
        self._links[(parent, role)] = link
        self._children[parent].insert(0, link)
        self._parents[child].insert(0, link)
        return link

    def detach(self, parent: str, role: str) -> None:
        for link in list(self.children(parent)):
            if link.role == role:
                self._children[parent].remove(link)
                self.parents(link.child).remove(link)
                del self._links[(parent, role)]

    def replace_child(self, parent: str, role: str, new_child: str | None) -> None:
        """Point ``parent``'s ``role`` link at ``new_child`` (None: drop it)."""
        old = next((c for c in self.children(parent) if c.role == role), None)
        if old is None:
            if new_child is not None:
                self.attach(parent, new_child, role)
            return
        self.parents(old.child).remove(old)
        if new_child is None:
            self._children[parent].remove(old)
            del self._links[(parent, role)]
            return
        old.child = new_child
        self.parents(new_child).insert(0, old)

    def replace_node(self, old: str, new: str) -> None:
        """Move ``old``'s parents to ``new`` (``bdrv_replace_node``): not job links,
        nor a link from ``new``'s own subtree; a frozen link refuses."""
        below_new = self._subtree(new)
        for link in list(self.parents(old)):
            if link.parent.startswith("job:") or link.parent in below_new:
                continue
            if link.frozen:
                raise RuleViolation(f"Cannot change '{link.role}' link to '{old}'")
            self.parents(old).remove(link)
            link.child = new
            self.parents(new).insert(0, link)

    def _subtree(self, key: str) -> set[str]:
        seen = {key}
        work = [key]
        while work:
            for c in self.children(work.pop()):
                if c.child not in seen:
                    seen.add(c.child)
                    work.append(c.child)
        return seen

    def set_read_only(self, key: str, read_only: bool) -> None:
        self._was_read_only.setdefault(key, self.read_only(key))
        self._read_only[key] = read_only

    def reopen_read_only(self, key: str, read_only: bool) -> None:
        """``bdrv_reopen_set_read_only``: the node and the children it created itself
        (auto-named ``file`` children, which inherit its options) change together."""
        self.set_read_only(key, read_only)
        child = self.child(key, "file")
        info = self.info(child) if child is not None else None
        if child is not None and info is not None and (info.auto_named or child in self.inline):
            self.reopen_read_only(child, read_only)

    # -- refreshing ---------------------------------------------------------------------
    def refresh(self, *starts: str | None) -> None:
        """Recompute the permissions below ``starts`` and check them, in QEMU's order
        (raises :class:`RuleViolation` with QEMU's text)."""
        order: list[str] = []
        found: set[str] = set()
        for start in starts:
            if start is not None:
                order = self._dfs(start, found) + order
        for key in order:
            self._check_node(key)
            self._set_child_perms(key)

    def _dfs(self, start: str, found: set[str]) -> list[str]:
        """Parents before children (QEMU's ``bdrv_topological_dfs``), iteratively."""
        out: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        if start in found:
            return out
        found.add(start)
        while stack:
            key, i = stack.pop()
            kids = self.children(key)
            if i < len(kids):
                stack.append((key, i + 1))
                nxt = kids[i].child
                if nxt not in found:
                    found.add(nxt)
                    stack.append((nxt, 0))
            else:
                out.append(key)
        out.reverse()
        return out

    def describe(self, key: str) -> str:
        """How QEMU names a parent in a permission conflict."""
        if key.startswith("job:"):
            info = self.info(key)
            return f"{info.driver if info else ''} job '{key[4:]}'"
        if key.startswith("backend:"):
            name = key[len("backend:"):]
            return "an unnamed block device" if not name or name.startswith("#") \
                else f"block device '{name}'"
        return f"node '{key}'"

    def _check_node(self, key: str) -> None:
        info = self.info(key)
        if info is None or info.kind != "block-node":
            return
        parents = self.parents(key)
        for a in parents:
            for b in parents:
                if a is b:
                    continue
                missing = b.perm & ~a.shared
                if missing:
                    raise PermissionConflict(key, missing, self.describe(b.parent), b.role,
                                             self.describe(a.parent), a.role)
        perm, shared = self.cumulative(key)
        if perm & (P.WRITE | P.WRITE_UNCHANGED) and self.read_only(key):
            if self._was_read_only.get(key, self.read_only(key)):
                raise NodeReadOnly()
            raise ReadOnlyWithWriters(key)
        if info.driver == "file" and info.filename:
            self._check_locks(key, info.filename, perm, shared)

    def _check_locks(self, key: str, filename: str, perm: int, shared: int) -> None:
        """Image locks against the other ``file`` nodes on the same host file."""
        g = self.view.nx()
        for other in g.nodes if g is not None else ():
            if other == key:
                continue
            oinfo = self.info(other)
            if oinfo is None or oinfo.driver != "file" or oinfo.filename != filename:
                continue
            operm, oshared = self.cumulative(other)
            text = P.lock_conflict(perm, shared, operm, oshared)
            if text:
                raise LockConflict(text)

    def _set_child_perms(self, key: str) -> None:
        info = self.info(key)
        if info is None or info.kind != "block-node":
            return
        perm, shared = self.cumulative(key)
        for link in self.children(key):
            if link.fixed:
                continue
            link.perm, link.shared = child_link_perms(
                info, link.role, writable=not self.read_only(key), parent_perm=perm,
                parent_shared=shared)


def child_link_perms(info: NodeInfo, role: str, *, writable: bool, parent_perm: int,
                     parent_shared: int) -> tuple[int, int]:
    """What a node with ``info`` takes on its child in ``role`` (QEMU's per-driver rules)."""
    if info.driver == "copy-on-read":
        passthrough = P.CONSISTENT_READ | P.WRITE | P.RESIZE
        return ((parent_perm & passthrough) | P.WRITE_UNCHANGED,
                (parent_shared & passthrough) | (P.ALL & ~passthrough))
    fixed_size = info.driver == "raw" and bool(
        {"offset", "size"} & set(_json_options(info.filename)))
    return P.child_perms(info.driver, role, writable=writable, force_share_child=False,
                         parent_perm=parent_perm, parent_shared=parent_shared,
                         fixed_size=fixed_size)


def _json_options(filename: str) -> dict[str, object]:
    if not filename.startswith("json:"):
        return {}
    try:
        data = json.loads(filename[len("json:"):])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# -- removable media --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Device:
    """A guest device with a block backend, as ``query-block`` reports it.

    ``name`` is how QMP's ``id`` names it (its qdev id, or its QOM path when it has
    none); ``medium`` the node inserted, if any.
    """

    name: str
    removable: bool = False
    has_tray: bool = False
    tray_open: bool = False
    locked: bool = False
    medium: str | None = None
    read_only: bool = True


def devices_from_query_block(reply: list[dict[str, object]]) -> dict[str, Device]:
    """The devices of a ``query-block`` reply, by the name ``id`` takes."""
    out: dict[str, Device] = {}
    for b in reply:
        name = str(b.get("qdev") or b.get("device") or "")
        if not name:
            continue
        inserted = b.get("inserted")
        medium = str(inserted.get("node-name")) if isinstance(inserted, dict) else None
        ro = bool(inserted.get("ro", True)) if isinstance(inserted, dict) else True
        out[name] = Device(name, bool(b.get("removable")), "tray_open" in b,
                           bool(b.get("tray_open")), bool(b.get("locked")), medium, ro)
    return out


class DeviceWithoutBackend(RuleViolation):
    def __init__(self) -> None:
        super().__init__("Device does not have a block device backend")


def find_device(view: GraphView, devices: dict[str, Device] | None, name: str) -> Device:
    """The device ``id`` names: known from ``query-block``, or (without it) a backend of
    the graph. A device that holds one with a block backend (``virtio-disk0`` of
    ``/machine/peripheral/virtio-disk0/virtio-backend``) has none itself."""
    if devices is not None:
        if name in devices:
            return devices[name]
        if any(d.name.startswith(f"/machine/peripheral/{name}/") for d in devices.values()):
            raise DeviceWithoutBackend()
        raise DeviceNotFound(name)
    if view.node_info(f"backend:{name}") is None:
        raise DeviceNotFound(name)
    medium = view.child(f"backend:{name}", "root")
    return Device(name, True, True, False, False, medium)


def check_medium(view: GraphView, devices: dict[str, Device] | None, name: str, op: str, *,
                 filename: str | None = None, fmt: str = "raw", read_only: bool | None = None,
                 force: bool = False) -> None:
    """``eject`` (op "eject") or ``blockdev-change-medium`` (op "change") of device
    ``name``, in QEMU's order: the device; the new medium opened (a format takes its
    image locks then; raw takes none until it is inserted); the tray; what holds the
    current medium; the new medium inserted under the device's permissions."""
    device = find_device(view, devices, name)
    writable = not (device.read_only if read_only is None else read_only)
    if op == "change" and filename is not None and fmt != "raw":
        perm = P.CONSISTENT_READ | (P.WRITE | P.RESIZE if writable else 0)
        _check_file_locks(view, filename, perm, P.ALL & ~(P.WRITE | P.RESIZE))
    if not device.removable:
        raise RuleViolation(f"Device '{name}' is not removable")
    if device.has_tray and not device.tray_open and device.locked and not force:
        raise RuleViolation(f"Device '{name}' is locked and force was not specified, "
                            "wait for tray to open and try again")
    if device.medium is not None and view.node_info(device.medium) is not None:
        check_op(view, device.medium, "eject")
    if op == "change" and filename is not None and fmt == "raw":
        # a removable device reads its medium and lets others read it too
        _check_file_locks(view, filename, P.CONSISTENT_READ,
                          P.CONSISTENT_READ | P.WRITE_UNCHANGED)


def check_tray(view: GraphView, devices: dict[str, Device] | None, name: str, op: str, *,
               node: str | None = None, force: bool = False) -> None:
    """``blockdev-open-tray`` ("open"), ``-close-tray`` ("close"), ``-remove-medium``
    ("remove") and ``-insert-medium`` ("insert" ``node``) of device ``name``. Opening a
    tray the guest locked is not refused: QEMU asks the guest and returns."""
    device = find_device(view, devices, name)
    if op == "insert":
        info = view.node_info(node or "")
        if info is None or info.kind != "block-node":
            raise RuleViolation(f"Node '{node}' not found")
        if any(e.parent.startswith("backend:") for e in view.parents(info.key)):
            raise RuleViolation(f"Node '{node}' is already in use")
        if not device.removable:
            raise RuleViolation("Device is not removable")
        if device.has_tray and not device.tray_open:
            raise RuleViolation("Tray of the device is not open")
        if device.medium is not None:
            raise RuleViolation("There already is a medium in the device")
        sim = PermissionSim(view)
        # a removable device reads its medium and lets others read it too
        sim.attach(f"backend:{name}", info.key, "root", perm=P.CONSISTENT_READ,
                   shared=P.CONSISTENT_READ | P.WRITE_UNCHANGED)
        sim.refresh(info.key)
        return
    if not device.removable:
        raise RuleViolation(f"Device '{name}' is not removable")
    if op == "remove":
        if device.has_tray and not device.tray_open:
            raise RuleViolation(f"Tray of device '{name}' is not open")
        if device.medium is not None and view.node_info(device.medium) is not None:
            check_op(view, device.medium, "eject")


def _check_file_locks(view: GraphView, filename: str, perm: int, shared: int) -> None:
    """A new node on ``filename`` taking ``perm`` and sharing ``shared``, beside the
    nodes already open on that host file (their image locks)."""
    sim = PermissionSim(view)
    for key in view.nx().nodes:
        info = view.node_info(key)
        if info is None or info.driver != "file" or info.filename != filename:
            continue
        operm, oshared = sim.cumulative(key)
        text = P.lock_conflict(perm, shared, operm, oshared)
        if text:
            raise LockConflict(text)

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

import networkx as nx

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
    raise RuleViolation(
        f"Cannot find device='{device or ''}' nor node-name='{node_name or ''}'")



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
    :class:`RuleViolation` otherwise. The checks and their order are QEMU's: implicit
    child, frozen link, backing support, cycle.
    """
    old = view.child(node, role)
    if new_child == old:
        return False
    if old is not None:
        if skip_implicit(view, old) == new_child:
            return False
        old_info = view.node_info(old)
        if old_info is not None and old_info.implicit:
            raise ImplicitChild(role, node)
        edge = view.edge(node, role)
        if edge is not None and edge.frozen:
            raise FrozenLink(role, node, old)
    info = view.node_info(node)
    if role == "backing" and info is not None and info.driver not in BACKING_DRIVERS:
        raise NoBackingSupport(info.driver, node)
    if new_child is not None and reaches(view, new_child, node):
        raise CycleViolation(new_child, role, node)
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
                 job_blockers: tuple[str, ...] = ()) -> None:
    """Would ``blockdev-del`` of ``node`` be refused? QEMU's check order:
    unknown node, used by a BlockBackend, operation blockers, not monitor-owned (unknown
    from QMP: pass None), other node parents.

    The operation blockers are the node's users that block deletion, the newest first
    (QEMU names the first of its list): a block job holding the node, or a node whose
    backing it is. ``job_blockers`` (job types, newest first) stands in for jobs a
    view cannot show as parents.
    """
    info = view.node_info(node)
    if info is None or info.kind != "block-node":
        raise NodeNotFound(node)
    parents = view.parents(node)
    if any(e.parent.startswith("backend:") for e in parents):
        raise NodeInUse(node)
    blocker = first_blocker(view, node)
    if blocker is None and job_blockers:
        blocker = f"block device is in use by block job: {job_blockers[0]}"
    if blocker is not None:
        raise NodeBusy(node, blocker)
    if monitor_owned is False:
        raise NotMonitorOwned(node)
    if any(not e.parent.startswith(("job:", "backend:")) for e in parents):
        raise BlockDeviceInUse(node)


#: operations a backing link does not block on the backing node (QEMU unblocks them)
BACKING_UNBLOCKED = frozenset({"stream", "commit-target", "backup-source", "backup-target"})


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
    """``blockdev-snapshot``'s checks on ``node`` (spec §4.1 1–2): it exists and is not
    the backing child of another node."""
    info = view.node_info(node)
    if info is None or info.kind != "block-node":
        raise ReferenceNotFound(node, node)
    for e in view.parents(node):
        if e.role == "backing" and not e.parent.startswith(("job:", "backend:")):
            raise NodeBusy(node, f"node is used as backing hd of '{e.parent}'")


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


def check_stream(view: GraphView, device: str, base: str | None) -> None:
    """``block-stream`` of ``device`` down to ``base`` (None: the whole chain), §5.2."""
    info = view.node_info(device)
    if info is None or info.kind != "block-node":
        raise ReferenceNotFound(device, device)
    if base is not None:
        if view.node_info(base) is None:
            raise ReferenceNotFound(base)
        if base not in _chain(view, device):
            raise NotInChain(f"Node '{base}' is not a backing image of '{device}'")
    job = _job_of(view, device)
    if job is not None:
        raise NodeBusy(device, f"block device is in use by block job: {job}")


def check_commit(view: GraphView, device: str, top: str, base: str | None) -> None:
    """``block-commit`` on ``device`` (a root node) of ``top`` into ``base``, §6.2."""
    info = view.node_info(device)
    if info is None or info.kind != "block-node":
        raise DeviceNotFound(device)
    if any(not e.parent.startswith(("job:", "backend:")) for e in view.parents(device)):
        raise RuleViolation("Need a root block node")
    if view.node_info(top) is None:
        raise ReferenceNotFound(top)
    if top != device and top not in _chain(view, device):
        raise NotInChain(f"'{top}' is not in this backing file chain")
    if base is not None:
        if view.node_info(base) is None:
            raise ReferenceNotFound(base)
        if base == top:
            raise RuleViolation("cannot commit an image into itself")
        if base not in _chain(view, top):
            raise NotInChain(f"'{base}' is not in this backing file chain")
    job = _job_of(view, device)
    if job is not None:
        raise NodeBusy(device, f"block device is in use by block job: {job}")

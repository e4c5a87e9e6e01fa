"""QEMU 7.2's rules for ``blockdev-reopen`` and backing/file link changes.

The checks and their order are QEMU's (``bdrv_reopen_prepare``,
``bdrv_set_file_or_backing_noperm``): reopen support by driver, options that cannot
change, the ``backing`` presence rule, implicit children, frozen links, backing
support, cycles, read-only users.
"""

from __future__ import annotations

from collections.abc import Collection

from engine.graph import drivers
from engine.graph.rules.chains import (
    FILTER_DRIVERS,
    find_node,
    reaches,
    resolve_reference,
    skip_implicit,
)
from engine.graph.rules.errors import (
    BackingMissing,
    CycleViolation,
    FrozenLink,
    ImplicitChild,
    NoBackingSupport,
    NodeNotFound,
    NodeReadOnly,
    OptionChange,
    OptionReset,
    ReadOnlyWithWriters,
    ReopenUnsupported,
    RuleViolation,
    Unexpected,
)
from engine.graph.rules.permissions import PermissionSim
from engine.graph.view import GraphView

#: Drivers with a ``backing`` option (COW formats).
BACKING_DRIVERS = drivers.BACKING_DRIVERS
#: Drivers that support blockdev-reopen in QEMU 7.2.
REOPEN_DRIVERS = frozenset(d.name for d in drivers.DRIVERS.values() if d.reopen)
#: Child roles a reopen may point at another node.
REPLACEABLE_ROLES = ("file", "backing")
#: Options each driver cannot change on reopen (and cannot reset to the default).
IMMUTABLE_OPTIONS: dict[str, tuple[str, ...]] = {
    d.name: d.immutable_options for d in drivers.DRIVERS.values() if d.immutable_options}


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


def check_reopen_by_name(view: GraphView, node: str) -> None:
    """Reopen names its node; an auto-generated name is not one of the node's options,
    so QEMU refuses it with ``Cannot change the option 'node-name'``."""
    find_node(view, node)
    if node.startswith("#"):
        raise OptionChange("node-name")


# -- reopen edits (the editor's link and read-only changes) --------------------------------
#: Drivers a graph may hold that QAPI's BlockdevDriver does not list (jobs' filters).
INTERNAL_DRIVERS = drivers.INTERNAL_DRIVERS


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

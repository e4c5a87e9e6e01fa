"""Permissions between a node's parents, simulated as QEMU refreshes them.

A :class:`PermissionSim` is a graph view with changes applied (a link attached, a
node replaced, a node made read-only); :meth:`PermissionSim.refresh` recomputes the
permissions below the change in QEMU's order and raises QEMU's refusal: a conflict
between two parents, a writer on a read-only node, an image lock held by another node
on the same host file. The rules for jobs, snapshots, reopen and media
(:mod:`.jobs`, :mod:`.nodes`, :mod:`.reopen`, :mod:`.media`) run their permission
checks here, for the engine and the editor's preflight alike.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import networkx as nx

from engine.formats.backing_names import options_of_name
from engine.graph import drivers
from engine.graph import perms as P
from engine.graph.rules.errors import (
    LockConflict,
    NodeReadOnly,
    PermissionConflict,
    ReadOnlyWithWriters,
    RuleViolation,
)
from engine.graph.snapshot import EdgeInfo, NodeInfo
from engine.graph.view import FileNames, GraphView

#: QMP permission names -> bits
_PERM_BITS = {"consistent-read": P.CONSISTENT_READ, "write": P.WRITE,
              "write-unchanged": P.WRITE_UNCHANGED, "resize": P.RESIZE}


def perm_bits(names: tuple[str, ...] | list[str]) -> int:
    """The bits of a ``perm``/``shared-perm`` list as queries report it."""
    bits = 0
    for name in names:
        bits |= _PERM_BITS.get(name, 0)
    return bits


@dataclass(frozen=True, slots=True)
class NodeUser:
    """One parent's use of a node, as QEMU's permission checks see it: how QEMU names
    the parent in its texts, the role, what it takes and what it shares."""

    who: str
    role: str
    perm: int
    shared: int


def check_node_users(node: str, users: Sequence[NodeUser], *, read_only: bool,
                     was_read_only: bool) -> None:
    """QEMU's checks of one node's users, in its order (the engine's live graph and the
    preflight's simulation both call it): two users where one takes what the other
    does not share, then writers on a read-only node (a node that was read-only
    before the change says only "Block node is read-only")."""
    perm = 0
    for a in users:
        perm |= a.perm
        for b in users:
            missing = b.perm & ~a.shared if a is not b else 0
            if missing:
                raise PermissionConflict(node, P.text_names(missing), b.who, b.role,
                                         a.who, a.role)
    if perm & (P.WRITE | P.WRITE_UNCHANGED) and read_only:
        if was_read_only:
            raise NodeReadOnly()
        raise ReadOnlyWithWriters(node)


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
        check_node_users(
            key, [NodeUser(self.describe(p.parent), p.role, p.perm, p.shared)
                  for p in self.parents(key)],
            read_only=self.read_only(key),
            was_read_only=self._was_read_only.get(key, self.read_only(key)))
        perm, shared = self.cumulative(key)
        if info.driver == "file" and info.filename:
            self._check_locks(key, info.filename, perm, shared)

    def _check_locks(self, key: str, filename: str, perm: int, shared: int) -> None:
        """Image locks against the other ``file`` nodes on the same host file."""
        check_locks_beside(self, filename, perm, shared, besides=key)

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
    options = options_of_name(info.filename)
    fixed_size = info.driver == "raw" and bool({"offset", "size"} & set(options))
    return P.child_perms(drivers.driver(info.driver), role, writable=writable,
                         force_share_child=False, parent_perm=parent_perm,
                         parent_shared=parent_shared, fixed_size=fixed_size,
                         rewrites=P.quorum_rewrites(info.driver, options),
                         extra=P.blkdebug_extra(info.driver, options))


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

    def nx(self) -> nx.MultiDiGraph[str]:
        return self.view.nx()

    def file_names(self) -> FileNames:
        return self.view.file_names()




def check_file_locks(view: GraphView, filename: str, perm: int, shared: int) -> None:
    """A new node on ``filename`` taking ``perm`` and sharing ``shared``, beside the
    nodes already open on that host file (their image locks)."""
    check_locks_beside(PermissionSim(view), filename, perm, shared)


def check_locks_beside(sim: PermissionSim, filename: str, perm: int, shared: int,
                       besides: str | None = None) -> None:
    """Taking ``perm`` and sharing ``shared`` on host file ``filename``: refused
    (:class:`LockConflict`, QEMU's text) when another ``file`` node on it (not
    ``besides``) holds an image lock against it."""
    g = sim.view.nx()
    for other in g.nodes if g is not None else ():
        info = sim.info(other)
        if other == besides or info is None or info.driver != "file" \
                or info.filename != filename:
            continue
        text = P.lock_conflict(perm, shared, *sim.cumulative(other))
        if text:
            raise LockConflict(text)

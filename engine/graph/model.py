"""The live block graph: nodes, backends, job parents and the child links between them.

This is the engine's mutable model of QEMU's block layer. It knows structure and
state (who is whose child in which role, read-only, options, the opened image) and
keeps permissions consistent; *what is allowed* lives in :mod:`engine.graph.rules`
and the QMP commands that drive it live in :mod:`engine.qmp`.

Vertices
    :class:`Node` — a block driver state (``qcow2``, ``raw``, ``file``, ``null-co``,
    job filters such as ``copy-on-read``/``commit_top``/``mirror_top``);
    :class:`Backend` — a BlockBackend: a device's disk or CD-ROM drive, an export,
    or a job's internal backend; :class:`JobParent` — a block job holding nodes.
Edges
    :class:`Child` — ``parent --role--> child`` with permissions and a frozen flag.

Changes are journaled: inside :meth:`BlockGraph.transaction` every mutation made
through the graph's methods records its inverse, and an exception rolls all of
them back (graph, options, read-only flags, permissions, auto-name counter) and
closes images opened meanwhile; images released by a successful transaction are
closed only when it commits.

For jobs (stream, commit, snapshots) the API is:

* :meth:`BlockGraph.insert_filter_above` / :meth:`BlockGraph.remove_filter` — put an
  (implicit, when auto-named) filter node above a node, moving its parents;
* :meth:`BlockGraph.replace_child` / :meth:`BlockGraph.attach` / :meth:`detach` —
  relink;
* :meth:`BlockGraph.add_job` / :meth:`BlockGraph.remove_job` — a :class:`JobParent`
  with links (role, node, perm, shared) so the job shows in the graph and guards
  its nodes; :meth:`BlockGraph.freeze_chain` / :meth:`unfreeze_chain` — frozen links;
* :meth:`BlockGraph.set_read_only` — reopen a node read-write for a job (and back);
* :meth:`BlockGraph.refresh_perms` — recompute permissions after such changes;
* :attr:`BlockGraph.drain_listeners` — ``callback(node_names, begin)`` around every
  ``blockdev-reopen`` (QEMU drains the reopened subtrees, so a running job on those
  nodes pauses and resumes — ``JOB_STATUS_CHANGE`` paused/running — even when the
  reopen then fails).

The graph is not thread-safe by itself: code running outside a QMP command (a job's
thread) must hold ``Engine.lock`` while it reads or changes the graph.

The graph is also a *graph view* (see :mod:`engine.graph.view`), so the rules run
on it exactly as on a :class:`~engine.graph.snapshot.GraphSnapshot`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from engine.graph import perms as P
from engine.graph.names import AutoNamer
from engine.graph.snapshot import (
    BLOCK_BACKEND,
    BLOCK_JOB,
    BLOCK_NODE,
    EdgeInfo,
    GraphSnapshot,
    NodeInfo,
)

#: Drivers whose nodes are protocol nodes (they have an exact filename of their own).
PROTOCOL_DRIVERS = frozenset({"file", "null-co", "null-aio", "host_device", "host_cdrom"})
#: Job filter drivers: an auto-named one is *implicit*.
JOB_FILTER_DRIVERS = frozenset({"copy-on-read", "commit_top", "mirror_top"})


class GraphError(Exception):
    """A graph operation was refused; ``str()`` is QEMU's text (a GenericError)."""


@dataclass(eq=False)
class Child:
    """One child link. ``inherits``: the child was created from this parent's options
    (inline, or opened from the image header) and so follows the parent's options."""

    parent: Node | Backend | JobParent
    child: Node
    role: str
    inherits: bool = False
    perm: int = 0
    shared: int = P.ALL
    frozen: bool = False
    #: For job and backend links: fixed permissions chosen by the owner.
    fixed: tuple[int, int] | None = None

    def describe_parent(self) -> str:
        return self.parent.describe()


@dataclass(eq=False)
class Node:
    """A block driver state."""

    name: str
    driver: str
    auto_named: bool = False
    #: The node's own options as opened (no child dicts; children are links).
    options: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False
    #: read-only was given explicitly (not inherited or defaulted).
    read_only_explicit: bool = False
    force_share: bool = False
    detect_zeroes: str = "off"
    discard: str = "ignore"
    cache_direct: bool = False
    cache_no_flush: bool = False
    write_threshold: int = 0
    image: Any = None                 # engine.formats Image for qcow2/raw-on-file nodes
    host_path: str | None = None      # file nodes: the host file
    size: int | None = None           # null nodes, raw with size
    seq: int = 0
    monitor_owned: bool = False
    implicit: bool = False
    children: dict[str, Child] = field(default_factory=dict)
    parents: list[Child] = field(default_factory=list)   # newest first
    header_backing: str | None = None
    header_backing_format: str | None = None
    auto_backing_file: str | None = None
    cum_perm: int = 0
    cum_shared: int = P.ALL
    #: job-type strings of jobs blocking this node ("stream", "commit"...).
    job_blockers: list[str] = field(default_factory=list)

    kind = BLOCK_NODE

    @property
    def key(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"node '{self.name}'"

    def child(self, role: str) -> Node | None:
        link = self.children.get(role)
        return link.child if link is not None else None

    @property
    def backing(self) -> Node | None:
        return self.child("backing")

    @property
    def file(self) -> Node | None:
        return self.child("file")

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.driver}{' ro' if self.read_only else ''}>"


@dataclass(eq=False)
class Backend:
    """A BlockBackend: a VM drive (disk / CD-ROM) or an anonymous user (export, job).

    ``name`` is the BlockBackend name (a ``-drive id``; empty for drives created by a
    device alone and for exports and job backends); ``qdev`` the device id it is
    attached to. ``device_kind`` is ``'device'``, ``'export'`` or ``'job'``.
    """

    name: str
    device_kind: str = "device"
    writable: bool = True
    removable: bool = False
    tray_open: bool = False
    locked: bool = False
    qdev: str | None = None
    root: Child | None = None
    kind = BLOCK_BACKEND

    @property
    def debug_name(self) -> str:
        """The name x-debug-query-block-graph shows: the drive name, else the device id."""
        return self.name or self.qdev or ""

    @property
    def key(self) -> str:
        if self.debug_name:
            return f"backend:{self.debug_name}"
        return f"backend:#{self.root.child.name if self.root else ''}"

    def describe(self) -> str:
        if self.debug_name:
            return f"block device '{self.debug_name}'"
        return "an unnamed block device"


@dataclass(eq=False)
class JobParent:
    """A block job as a parent of the nodes it uses (``main node``, ``base``...)."""

    job_id: str
    job_type: str
    links: list[Child] = field(default_factory=list)
    kind = BLOCK_JOB

    @property
    def key(self) -> str:
        return f"job:{self.job_id}"

    @property
    def name(self) -> str:
        return self.job_id

    def describe(self) -> str:
        return f"{self.job_type} job '{self.job_id}'"


Owner = Node | Backend | JobParent


class BlockGraph:
    """The engine's block graph (see the module docstring)."""

    def __init__(self, rng_seed: int | None = None, root: Path | None = None,
                 namer: AutoNamer | None = None) -> None:
        self.nodes: dict[str, Node] = {}          # creation order
        self.backends: dict[int, Backend] = {}    # by id(); named ones also in by_name
        self.backend_names: dict[str, Backend] = {}
        self.jobs: dict[str, JobParent] = {}
        self.namer = namer if namer is not None else AutoNamer(seed=rng_seed)
        self.root = root
        self.g = nx.MultiDiGraph()
        self._seq = 0
        self._journal: list[Callable[[], None]] | None = None
        self._on_commit: list[Callable[[], None]] = []
        self.ro_before: dict[str, bool] = {}
        self.files: dict[str, list[Node]] = {}    # host path -> file nodes (image locking)
        #: Called as ``listener(node_names, begin)`` when a reopen drains subtrees.
        self.drain_listeners: list[Callable[[frozenset[str], bool], None]] = []

    # -- transactions ---------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, *, restore_names: bool = True) -> Iterator[None]:
        """All changes inside succeed together or are undone together.

        Nested use joins the outer transaction. ``restore_names``: also roll back the
        auto-name counter (QEMU keeps it advanced after a failed ``blockdev-add``).
        """
        if self._journal is not None:
            yield
            return
        self._journal, self._on_commit, self.ro_before = [], [], {}
        saved = self.namer.save()
        try:
            yield
        except BaseException:
            journal, self._journal = self._journal, None
            for undo in reversed(journal):
                undo()
            if restore_names:
                self.namer.restore(saved)
            self._on_commit = []
            raise
        else:
            self._journal = None
            on_commit, self._on_commit = self._on_commit, []
            for action in on_commit:
                action()
        finally:
            self._journal = None
            self.ro_before = {}

    def record(self, undo: Callable[[], None]) -> None:
        """Register the inverse of a change made outside the graph's own methods."""
        if self._journal is not None:
            self._journal.append(undo)

    def on_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the current transaction commits (now, if there is none)."""
        if self._journal is None:
            action()
        else:
            self._on_commit.append(action)

    def set(self, obj: Any, attr: str, value: Any) -> None:
        """Set an attribute, journaled."""
        old = getattr(obj, attr)
        if old is value or old == value:
            return
        setattr(obj, attr, value)
        self.record(lambda: setattr(obj, attr, old))

    @contextlib.contextmanager
    def drained(self, roots: list[Node]) -> Iterator[None]:
        """Tell the drain listeners that ``roots`` and everything below are drained."""
        if not self.drain_listeners or not roots:
            yield
            return
        names: set[str] = set()
        for root in roots:
            names.add(root.name)
            names.update(k for k in nx.descendants(self.g, root.name) if k in self.nodes)
        frozen = frozenset(names)
        for listener in list(self.drain_listeners):
            listener(frozen, True)
        try:
            yield
        finally:
            for listener in list(self.drain_listeners):
                listener(frozen, False)

    # -- nodes ----------------------------------------------------------------------
    def new_name(self) -> str:
        return self.namer.next_name()

    def add_node(self, node: Node) -> Node:
        """Register a new node (creation order = now)."""
        if node.name in self.nodes:
            raise GraphError(f"Duplicate nodes with node-name='{node.name}'")
        self._seq += 1
        node.seq = self._seq
        self.nodes[node.name] = node
        self.g.add_node(node.name)
        if node.driver == "file" and node.host_path is not None:
            self.files.setdefault(node.host_path, []).append(node)

        def undo() -> None:
            self.nodes.pop(node.name, None)
            if self.g.has_node(node.name):
                self.g.remove_node(node.name)
            if node.driver == "file" and node.host_path is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.files[node.host_path].remove(node)
            self._close_image(node)

        self.record(undo)
        return node

    def _close_image(self, node: Node) -> None:
        if node.image is not None:
            with contextlib.suppress(Exception):
                node.image.close()

    def remove_node(self, node: Node) -> None:
        """Forget a node with no parents; children nothing else holds go too (iteratively,
        chains can be deep)."""
        work = [node]
        while work:
            current = work.pop()
            assert not current.parents, f"{current.name} still has parents"
            for link in list(current.children.values()):
                self.detach(link, release=False)
                child = link.child
                if not child.parents and not child.monitor_owned and child.name in self.nodes:
                    work.append(child)
            self._forget(current)

    def _forget(self, node: Node) -> None:
        del self.nodes[node.name]
        self.g.remove_node(node.name)
        if node.driver == "file" and node.host_path is not None:
            self.files[node.host_path].remove(node)

        def undo() -> None:
            self.nodes[node.name] = node
            # keep creation order: reinsert sorted by seq
            ordered = sorted(self.nodes.values(), key=lambda n: n.seq)
            self.nodes.clear()
            self.nodes.update((n.name, n) for n in ordered)
            self.g.add_node(node.name)
            if node.driver == "file" and node.host_path is not None:
                self.files.setdefault(node.host_path, []).append(node)

        self.record(undo)
        if node.image is not None:
            self.on_commit(lambda: self._close_image(node))

    def release(self, node: Node) -> None:
        """Delete ``node`` if nothing holds it any more (no parent, not monitor-owned)."""
        if not node.parents and not node.monitor_owned and node.name in self.nodes:
            self.remove_node(node)

    def find(self, name: str) -> Node | None:
        return self.nodes.get(name)

    # -- links ----------------------------------------------------------------------
    def attach(self, parent: Owner, child: Node, role: str, *, inherits: bool = False,
               fixed: tuple[int, int] | None = None) -> Child:
        """Add the link ``parent --role--> child`` (permissions not yet refreshed)."""
        link = Child(parent=parent, child=child, role=role, inherits=inherits, fixed=fixed)
        if fixed is not None:
            link.perm, link.shared = fixed
        self._link(link)
        self.record(lambda: self._unlink(link))
        return link

    def _link(self, link: Child) -> None:
        parent = link.parent
        if isinstance(parent, Node):
            parent.children[link.role] = link
        elif isinstance(parent, Backend):
            parent.root = link
        else:
            parent.links.append(link)
        link.child.parents.insert(0, link)
        self.g.add_edge(parent.key, link.child.name, key=link.role)

    def _unlink(self, link: Child) -> None:
        parent = link.parent
        if isinstance(parent, Node):
            if parent.children.get(link.role) is link:
                del parent.children[link.role]
        elif isinstance(parent, Backend):
            if parent.root is link:
                parent.root = None
        else:
            with contextlib.suppress(ValueError):
                parent.links.remove(link)
        with contextlib.suppress(ValueError):
            link.child.parents.remove(link)
        with contextlib.suppress(nx.NetworkXError):
            self.g.remove_edge(parent.key, link.child.name, key=link.role)

    def detach(self, link: Child, *, release: bool = True) -> None:
        """Remove a link; the former child is deleted if nothing else holds it."""
        index = link.child.parents.index(link)
        parent = link.parent
        children_order = list(parent.children) if isinstance(parent, Node) else None
        self._unlink(link)

        def undo() -> None:
            if isinstance(parent, Node):
                parent.children[link.role] = link
                if children_order is not None:   # restore attach order
                    reordered = {r: parent.children[r] for r in children_order
                                 if r in parent.children}
                    reordered.update(parent.children)
                    parent.children.clear()
                    parent.children.update(reordered)
            elif isinstance(parent, Backend):
                parent.root = link
            else:
                parent.links.append(link)
            link.child.parents.insert(index, link)
            self.g.add_edge(parent.key, link.child.name, key=link.role)

        self.record(undo)
        if release:
            self.release(link.child)

    def replace_child(self, parent: Node, role: str, new_child: Node | None, *,
                      inherits: bool = False) -> None:
        """Point ``parent``'s ``role`` link at ``new_child`` (None: drop the link).

        The old child is released (deleted if unreferenced) when the change commits.
        """
        old = parent.children.get(role)
        if old is not None and new_child is not None and old.child is new_child:
            return
        if old is not None:
            self.detach(old, release=False)
            old_child = old.child
            self.on_commit(lambda: self._release_later(old_child))
        if new_child is not None:
            self.attach(parent, new_child, role, inherits=inherits)

    def _release_later(self, node: Node) -> None:
        if node.name in self.nodes and not node.parents and not node.monitor_owned:
            with self.transaction():
                self.remove_node(node)

    def insert_filter_above(self, filter_node: Node, below: Node, role: str = "file") -> None:
        """Move every parent of ``below`` onto ``filter_node`` and make ``below`` its child."""
        for link in list(below.parents):
            if link.parent is filter_node:
                continue
            self._move_link(link, filter_node)
        self.attach(filter_node, below, role, inherits=False)

    def remove_filter(self, filter_node: Node, role: str = "file") -> None:
        """Undo :meth:`insert_filter_above`: parents go back to the filtered node."""
        link = filter_node.children.get(role)
        assert link is not None
        below = link.child
        for parent_link in list(filter_node.parents):
            self._move_link(parent_link, below)
        self.detach(link, release=False)
        self.release(filter_node)

    def _move_link(self, link: Child, new_child: Node) -> None:
        self._unlink(link)
        old_child = link.child
        link.child = new_child
        self._link(link)

        def undo() -> None:
            self._unlink(link)
            link.child = old_child
            self._link(link)

        self.record(undo)

    # -- backends and jobs ----------------------------------------------------------
    def move_parents(self, src: Node, dst: Node) -> None:
        """Point every parent link of ``src`` (nodes, backends, jobs) at ``dst`` instead —
        what blockdev-snapshot does to the overlay and job completion to the base."""
        for link in list(src.parents):
            self._move_link(link, dst)

    def add_backend(self, backend: Backend, node: Node | None) -> Backend:
        if backend.debug_name:
            self.backend_names[backend.debug_name] = backend
        self.backends[id(backend)] = backend

        def undo() -> None:
            self.backends.pop(id(backend), None)
            if backend.debug_name:
                self.backend_names.pop(backend.debug_name, None)

        self.record(undo)
        self.g.add_node(backend.key)
        if node is not None:
            self.attach_backend_root(backend, node)
        return backend

    def attach_backend_root(self, backend: Backend, node: Node) -> Child:
        """Insert ``node`` as the backend's medium / root (permissions refreshed)."""
        old_key = backend.key
        fixed = P.backend_perms(backend.device_kind, backend.writable and not node.read_only,
                                removable=backend.removable)
        link = Child(parent=backend, child=node, role="root", fixed=fixed,
                     perm=fixed[0], shared=fixed[1])
        if backend.key != old_key and self.g.has_node(old_key):
            self.g.remove_node(old_key)
        backend.root = link
        node.parents.insert(0, link)
        self.g.add_node(backend.key)
        self.g.add_edge(backend.key, node.name, key="root")

        def undo() -> None:
            self._unlink(link)

        self.record(undo)
        self.refresh_perms([node])
        return link

    def detach_backend_root(self, backend: Backend) -> Node | None:
        link = backend.root
        if link is None:
            return None
        self.detach(link)
        return link.child

    def remove_backend(self, backend: Backend) -> None:
        if backend.root is not None:
            self.detach(backend.root)
        self.backends.pop(id(backend), None)
        if backend.debug_name:
            self.backend_names.pop(backend.debug_name, None)
        if self.g.has_node(backend.key):
            self.g.remove_node(backend.key)

    def add_job(self, job: JobParent, links: list[tuple[str, Node, int, int]]) -> JobParent:
        """Register a job holding ``links`` = [(role, node, perm, shared)]."""
        self.jobs[job.job_id] = job
        self.g.add_node(job.key)
        self.record(lambda: (self.jobs.pop(job.job_id, None),
                             self.g.remove_node(job.key) if self.g.has_node(job.key) else None))
        for role, node, perm, shared in links:
            self.attach(job, node, role, fixed=(perm, shared))
            node.job_blockers.append(job.job_type)
            self.record(lambda n=node, t=job.job_type: n.job_blockers.remove(t))
        self.refresh_perms([n for _, n, _, _ in links])
        return job

    def remove_job(self, job: JobParent) -> None:
        for link in list(job.links):
            with contextlib.suppress(ValueError):
                link.child.job_blockers.remove(job.job_type)
            self.detach(link)
        self.jobs.pop(job.job_id, None)
        if self.g.has_node(job.key):
            self.g.remove_node(job.key)

    def freeze_chain(self, top: Node, base: Node | None, frozen: bool = True) -> None:
        """(Un)freeze every backing/filter link from ``top`` down to ``base`` (exclusive).

        A frozen link cannot be changed by reopen ("Cannot change frozen 'backing'
        link from 'A' to 'B'").
        """
        node: Node | None = top
        while node is not None and node is not base:
            link = node.children.get("backing") or (
                node.children.get("file") if node.driver in JOB_FILTER_DRIVERS else None)
            if link is None:
                break
            self.set(link, "frozen", frozen)
            node = link.child

    def unfreeze_chain(self, top: Node, base: Node | None) -> None:
        self.freeze_chain(top, base, frozen=False)

    def set_read_only(self, node: Node, read_only: bool) -> None:
        """Change a node's read-only flag, reopening its image file at once.

        The new file handle is opened now, so a failure (a file that cannot be opened
        read-write) is an ordinary error the transaction rolls back; the old handle
        is closed only when the transaction commits.
        """
        if node.read_only == read_only:
            return
        from engine.graph import images

        self.ro_before.setdefault(node.name, node.read_only)
        old = node.image
        if old is not None:
            if getattr(old, "writable", False):
                old.flush()
            new = images.open_format_image(old.path, node.driver, writable=not read_only)
            self.set(node, "image", new)
            self.record(lambda: self._close_image_object(new))
            self.on_commit(lambda: self._close_image_object(old))
        elif node.driver == "file" and node.host_path is not None and not read_only:
            images.check_host_file(str(node.options.get("filename", node.host_path)),
                                   node.host_path, writable=True)
        self.set(node, "read_only", read_only)

    @staticmethod
    def _close_image_object(image: Any) -> None:
        with contextlib.suppress(Exception):
            image.close()

    # -- permissions ----------------------------------------------------------------
    def refresh_perms(self, seeds: list[Node]) -> None:
        """Recompute permissions below ``seeds`` and check them, as QEMU does on every
        graph change: conflicts between parents, writers on read-only nodes, image locks.

        Raises :class:`GraphError` with QEMU's text; inside a transaction the caller's
        rollback restores the previous permissions.
        """
        touched: list[Node] = []
        seen: set[str] = set()
        work = list(seeds)
        while work:
            node = work.pop()
            if node.name not in self.nodes:
                continue
            perm, shared = 0, P.ALL
            for link in node.parents:
                perm |= link.perm
                shared &= link.shared
            changed = (perm, shared) != (node.cum_perm, node.cum_shared)
            if changed:
                self._set_cum(node, perm, shared)
            if node.name not in seen:
                seen.add(node.name)
                touched.append(node)
            for role, link in node.children.items():
                if link.fixed is not None:
                    continue
                new = P.child_perms(
                    node.driver, role, writable=not node.read_only,
                    force_share_child=link.child.force_share,
                    parent_perm=node.cum_perm, parent_shared=node.cum_shared,
                    fixed_size=node.driver == "raw" and (
                        "offset" in node.options or "size" in node.options))
                if new != (link.perm, link.shared):
                    self._set_link_perm(link, *new)
                    work.append(link.child)
        order = self._topological(touched)
        for node in order:
            self.check_node_perms(node)

    @staticmethod
    def _topological(nodes: list[Node]) -> list[Node]:
        """``nodes`` with parents before children (Kahn's algorithm on the touched set
        only: a refresh usually touches a handful of nodes of a big graph)."""
        if len(nodes) <= 1:
            return nodes
        members = {id(n): n for n in nodes}
        indegree = {key: 0 for key in members}
        for n in nodes:
            for link in n.parents:
                if id(link.parent) in members:
                    indegree[id(n)] += 1
        ready = [n for n in nodes if indegree[id(n)] == 0]
        out: list[Node] = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for link in n.children.values():
                key = id(link.child)
                if key in indegree:
                    indegree[key] -= 1
                    if indegree[key] == 0:
                        ready.append(link.child)
        if len(out) != len(nodes):   # pragma: no cover - the rules forbid cycles
            return nodes
        return out

    def _set_cum(self, node: Node, perm: int, shared: int) -> None:
        old = (node.cum_perm, node.cum_shared)
        node.cum_perm, node.cum_shared = perm, shared

        def undo() -> None:
            node.cum_perm, node.cum_shared = old

        self.record(undo)

    def _set_link_perm(self, link: Child, perm: int, shared: int) -> None:
        old = (link.perm, link.shared)
        link.perm, link.shared = perm, shared

        def undo() -> None:
            link.perm, link.shared = old

        self.record(undo)

    def check_node_perms(self, node: Node) -> None:
        parents = node.parents
        # a conflict needs some parent's perm outside some other parent's shared set
        conflict_possible = bool(node.cum_perm & ~node.cum_shared & P.ALL)
        for a in parents if conflict_possible else ():
            for b in parents:
                if a is b:
                    continue
                missing = b.perm & ~a.shared
                if missing:
                    raise GraphError(
                        f"Permission conflict on node '{node.name}': permissions "
                        f"'{P.text_names(missing)}' are both required by "
                        f"{b.describe_parent()} (uses node '{node.name}' as '{b.role}' child) "
                        f"and unshared by {a.describe_parent()} (uses node '{node.name}' as "
                        f"'{a.role}' child).")
        if node.cum_perm & (P.WRITE | P.WRITE_UNCHANGED) and node.read_only:
            if self.ro_before.get(node.name, True):
                raise GraphError("Block node is read-only")
            raise GraphError(
                f"Read-only block node '{node.name}' cannot support read-write users")
        if node.driver == "file" and node.host_path is not None and \
                node.options.get("locking", "auto") != "off":
            for other in self.files.get(node.host_path, ()):
                if other is node or other.options.get("locking", "auto") == "off":
                    continue
                err = P.lock_conflict(node.cum_perm, node.cum_shared,
                                      other.cum_perm, other.cum_shared)
                if err:
                    raise GraphError(err)

    # -- graph view -------------------------------------------------------------------
    def node_info(self, key: str) -> NodeInfo | None:
        node = self.nodes.get(key)
        if node is not None:
            return NodeInfo(key=node.name, kind=BLOCK_NODE, name=node.name, driver=node.driver,
                            read_only=node.read_only, header_backing=node.header_backing,
                            header_backing_format=node.header_backing_format,
                            implicit=node.implicit)
        if key.startswith("backend:"):
            for b in self.backends.values():
                if b.key == key:
                    return NodeInfo(key=key, kind=BLOCK_BACKEND, name=b.debug_name)
        if key.startswith("job:"):
            job = self.jobs.get(key[4:])
            if job is not None:
                return NodeInfo(key=key, kind=BLOCK_JOB, name=job.job_id, driver=job.job_type)
        return None

    def _node_info(self, node: Node, memo: dict[str, str] | None) -> NodeInfo:
        from engine.graph.filenames import filename

        img = node.image
        return NodeInfo(
            key=node.name, kind=BLOCK_NODE, name=node.name, driver=node.driver,
            read_only=node.read_only, filename=filename(node, memo if memo is not None else {}),
            virtual_size=virtual_size(node),
            cluster_size=getattr(img, "cluster_size", None),
            header_backing=node.header_backing,
            header_backing_format=node.header_backing_format,
            implicit=node.implicit)

    def _owner(self, key: str) -> Owner | None:
        if key in self.nodes:
            return self.nodes[key]
        if key.startswith("job:"):
            return self.jobs.get(key[4:])
        for b in self.backends.values():
            if b.key == key:
                return b
        return None

    @staticmethod
    def _edge(link: Child) -> EdgeInfo:
        return EdgeInfo(parent=link.parent.key, child=link.child.name, role=link.role,
                        perm=P.qmp_names(link.perm), shared_perm=P.qmp_names(link.shared),
                        frozen=link.frozen)

    def children(self, key: str) -> list[EdgeInfo]:
        owner = self._owner(key)
        if owner is None:
            return []
        return [self._edge(link) for link in _links_of(owner)]

    def parents(self, key: str) -> list[EdgeInfo]:
        node = self.nodes.get(key)
        return [self._edge(link) for link in node.parents] if node is not None else []

    def child(self, key: str, role: str) -> str | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        link = node.children.get(role)
        return link.child.name if link is not None else None

    def backing(self, key: str) -> str | None:
        return self.child(key, "backing")

    def edge(self, parent: str, role: str) -> EdgeInfo | None:
        node = self.nodes.get(parent)
        link = node.children.get(role) if node is not None else None
        return self._edge(link) if link is not None else None

    def nx(self) -> nx.MultiDiGraph:
        return self.g

    def snapshot(self) -> GraphSnapshot:
        """The graph now, immutable; nodes newest first, then backends, then jobs."""
        from engine.graph.filenames import all_filenames

        memo = all_filenames(self)
        infos = [self._node_info(n, memo) for n in reversed(self.nodes.values())]
        infos += [NodeInfo(key=b.key, kind=BLOCK_BACKEND, name=b.debug_name)
                  for b in self.backends.values()]
        infos += [NodeInfo(key=j.key, kind=BLOCK_JOB, name=j.job_id, driver=j.job_type)
                  for j in self.jobs.values()]
        edges = [self._edge(link) for owner in (*self.nodes.values(),
                                                *self.backends.values(), *self.jobs.values())
                 for link in _links_of(owner)]
        return GraphSnapshot(infos, edges)

    # -- paths ----------------------------------------------------------------------
    def host_path(self, filename: str) -> str:
        """An absolute host path for ``filename``; refuses paths outside ``root``."""
        if "\0" in filename:
            # QEMU's C strings end at the NUL, so it looks for what comes before it;
            # the engine opens no such truncated name (nor, under --root, checks one)
            raise GraphError(f"Could not open '{filename}': No such file or directory")
        path = os.path.abspath(filename)
        if self.root is not None:
            real = os.path.realpath(path)
            root = str(self.root)
            if real != root and not real.startswith(root + os.sep):
                raise GraphError(f"Could not open '{filename}': Permission denied")
        return path

    def close(self) -> None:
        for node in self.nodes.values():
            self._close_image(node)


def virtual_size(node: Node) -> int:
    """The size a node presents, as QEMU reports it (host files in whole sectors)."""
    seen = 0
    while seen < 10000:
        if node.image is not None:
            return int(node.image.virtual_size)
        if node.driver == "file" and node.host_path is not None:
            try:
                return -(-os.stat(node.host_path).st_size // 512) * 512
            except OSError:
                return 0
        if node.size is not None:
            return node.size
        below = node.child("file")
        if below is None:
            return 0
        node, seen = below, seen + 1
    return 0


def _links_of(owner: Owner) -> list[Child]:
    if isinstance(owner, Node):
        return list(owner.children.values())
    if isinstance(owner, Backend):
        return [owner.root] if owner.root is not None else []
    return list(owner.links)

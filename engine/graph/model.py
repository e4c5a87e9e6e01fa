"""The live block graph: nodes, backends, job parents and the child links between them.

This is the engine's mutable model of QEMU's block layer. It knows structure and
state (who is whose child in which role, read-only, options, each node's driver
instance) and keeps permissions consistent; *what is allowed* lives in
:mod:`engine.graph.rules` and the QMP commands that drive it live in :mod:`engine.qmp`.
The vertices and edges are in :mod:`engine.graph.nodes`.

Changes are journaled (:mod:`engine.graph.journal`): inside
:meth:`BlockGraph.transaction` every mutation made through the graph's methods records
its inverse, and an exception rolls all of them back (graph, options, read-only flags,
permissions, auto-name counter) and closes files opened meanwhile; files released by a
successful transaction are closed only when it commits. Every change of a child link
counts in ``graph.io`` (:class:`~engine.graph.io.base.IOContext`), so node I/O looks
its children up again at its next request.

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
  ``blockdev-reopen`` (QEMU drains the reopened subtrees).

The graph is not thread-safe by itself: code running outside a QMP command (a job's
thread) must hold ``Engine.lock`` while it reads or changes the graph, and
``graph.io.lock`` around its I/O.

The graph is also a *graph view* (:mod:`engine.graph.live_view`), so the rules run
on it exactly as on a :class:`~engine.graph.snapshot.GraphSnapshot`.

Slightly over 500 lines: every method here mutates the graph under the journal, and
the journal's promise (a failed transaction changes nothing) is checked by reading
them together; the vertices, names, options, permissions and views are in modules of
their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import networkx as nx
from networkx import has_path

from engine.formats.errors import ImageError
from engine.formats.hostfile import HostFile, HostFS, NotRegularFile
from engine.graph import permcheck
from engine.graph import perms as P
from engine.graph.io.context import IOContext
from engine.graph.io.throttle import release_drained
from engine.graph.journal import Journaled
from engine.graph.live_view import LiveView
from engine.graph.names import AutoNamer
from engine.graph.nodes import (
    Backend,
    Child,
    GraphError,
    JobParent,
    Node,
    Owner,
    inherits_recursively,
    virtual_size,
)
from engine.graph.rules import contexts as rules_contexts

__all__ = ["Backend", "BlockGraph", "Child", "GraphError", "JobParent", "Node",
           "virtual_size"]


def rules_reaches(graph: BlockGraph, src: str, dst: str) -> bool:
    """Is ``dst`` ``src`` or below it (any role)?"""
    return src == dst or (graph.g.has_node(src) and graph.g.has_node(dst)
                          and has_path(graph.g, src, dst))


class BlockGraph(Journaled, LiveView):
    """The engine's block graph (see the module docstring)."""

    def __init__(self, rng_seed: int | None = None, root: Path | None = None,
                 namer: AutoNamer | None = None) -> None:
        super().__init__()
        self.nodes: dict[str, Node] = {}          # creation order
        self.backends: dict[int, Backend] = {}    # by id(); named ones also in by_name
        self.backend_names: dict[str, Backend] = {}
        self.jobs: dict[str, JobParent] = {}
        self.namer = namer if namer is not None else AutoNamer(seed=rng_seed)
        self.root = root
        #: every host file the graph opens or creates goes through this
        self.hostfs = HostFS(root)
        self.io = IOContext()
        self.g = nx.MultiDiGraph()
        self._seq = 0
        #: host file identity (st_dev, st_ino) -> file nodes on it (image locking)
        self.files: dict[tuple[int, int], list[Node]] = {}
        #: id(node) -> the nodes that inherit from it (see Node.inherits_from)
        self._inheritors: dict[int, set[Node]] = {}
        #: Called as ``listener(node_names, begin)`` when a reopen drains subtrees.
        self.drain_listeners: list[Callable[[frozenset[str], bool], None]] = [
            release_drained(self.nodes)]

    @contextlib.contextmanager
    def drained(self, roots: list[Node], *, subtree: bool = True) -> Iterator[None]:
        """Tell the drain listeners that ``roots``, everything below (unless ``subtree``
        is False: QEMU's drain of a single node, as a device's own) and above are
        drained."""
        if not self.drain_listeners or not roots:
            yield
            return
        names: set[str] = set()
        for root in roots:       # the subtrees, and every node above them (QEMU quiesces
            names.add(root.name)     # the parents of drained nodes, up to the top)
            if subtree:
                names.update(k for k in nx.descendants(self.g, root.name) if k in self.nodes)
        work = list(names)
        while work:      # one upward sweep from all of them: linear in the graph
            for parent in self.g.predecessors(work.pop()):
                if parent in self.nodes and parent not in names:
                    names.add(parent)
                    work.append(parent)
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
        if node.file_id is not None:
            self.files.setdefault(node.file_id, []).append(node)

        def undo() -> None:
            self.nodes.pop(node.name, None)
            if self.g.has_node(node.name):
                self.g.remove_node(node.name)
            if node.file_id is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.files[node.file_id].remove(node)
            self._close_io(node)

        self.record(undo)
        return node

    @staticmethod
    def _close_io(node: Node) -> None:
        if node.io is not None:
            with contextlib.suppress(Exception):
                node.io.close()

    def remove_node(self, node: Node) -> None:
        """Forget a node with no parents; children nothing else holds go too (iteratively,
        chains can be deep)."""
        work = [node]
        while work:
            current = work.pop()
            assert not current.parents, f"{current.name} still has parents"
            if current.io is not None and current.io.frozen_base is not None:
                self.unfreeze_chain(current, current.io.frozen_base)
            for link in list(current.children.values()):
                self.detach(link, release=False)
                child = link.child
                if not child.parents and not child.monitor_owned and child.name in self.nodes:
                    work.append(child)
            self._forget(current)

    def _forget(self, node: Node) -> None:
        del self.nodes[node.name]
        self.g.remove_node(node.name)
        if node.file_id is not None:
            self.files[node.file_id].remove(node)

        def undo() -> None:
            self.nodes[node.name] = node
            # keep creation order: reinsert sorted by seq
            ordered = sorted(self.nodes.values(), key=lambda n: n.seq)
            self.nodes.clear()
            self.nodes.update((n.name, n) for n in ordered)
            self.g.add_node(node.name)
            if node.file_id is not None:
                self.files.setdefault(node.file_id, []).append(node)

        self.record(undo)
        if node.io is not None:
            self.on_commit(lambda: self._close_io(node))

    def release(self, node: Node) -> None:
        """Delete ``node`` if nothing holds it any more (no parent, not monitor-owned)."""
        if not node.parents and not node.monitor_owned and node.name in self.nodes:
            self.remove_node(node)

    def find(self, name: str) -> Node | None:
        return self.nodes.get(name)

    # -- links ----------------------------------------------------------------------
    def attach(self, parent: Owner, child: Node, role: str, *, inherits: bool = False,
               fixed: tuple[int, int] | None = None) -> Child:
        """Add the link ``parent --role--> child`` (permissions not yet refreshed);
        ``inherits``: the child was created from the parent's options. Two parts of the
        graph in different iothreads become one (rules.contexts decides which moves)."""
        if not isinstance(parent, JobParent):
            self._join_contexts(parent, child)
        link = Child(parent=parent, child=child, role=role, fixed=fixed)
        if fixed is not None:
            link.perm, link.shared = fixed
        self._link(link)
        self.record(lambda: self._unlink(link))
        if inherits and isinstance(parent, Node):
            self.set_inherits_from(child, parent)
        return link

    def _join_contexts(self, parent: Node | Backend, child: Node) -> None:
        context, moving = rules_contexts.plan_attach_context(self, parent.key, child.name)
        self.move_to_context(moving, context)

    def move_to_context(self, keys: list[str], context: str) -> None:
        """Put the nodes, backends and jobs ``keys`` in iothread ``context`` (journaled)."""
        for key in keys:
            owner = self._owner(key)
            if owner is not None:
                self.set(owner, "aio_context", context)

    def set_inherits_from(self, child: Node, parent: Node | None) -> None:
        """Journaled change of ``child.inherits_from`` (kept in the reverse index)."""
        old = child.inherits_from
        if old is parent:
            return
        if old is not None:
            self._inheritors.get(id(old), set()).discard(child)
        if parent is not None:
            self._inheritors.setdefault(id(parent), set()).add(child)
        child.inherits_from = parent
        self.record(lambda: self.set_inherits_from(child, old))

    def _unset_inherits_from(self, root: Node, link: Child) -> None:
        """QEMU's bdrv_unset_inherits_from: ``link`` goes away, so its child and the nodes
        below it stop inheriting from ``root`` (unless another link of ``root`` still
        reaches them directly). Only the nodes that inherit from ``root`` are looked at."""
        for child in list(self._inheritors.get(id(root), ())):
            if child is not link.child and (not link.child.children or not rules_reaches(
                    self, link.child.name, child.name)):
                continue
            if any(other is not link and other.child is child
                   for other in root.children.values()):
                continue
            self.set_inherits_from(child, None)

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
        self.io.changed()

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
        self.io.changed()

    def detach(self, link: Child, *, release: bool = True) -> None:
        """Remove a link; the former child is deleted if nothing else holds it."""
        index = link.child.parents.index(link)
        parent = link.parent
        children_order = list(parent.children) if isinstance(parent, Node) else None
        if isinstance(parent, Node):
            self._unset_inherits_from(parent, link)
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
            self.io.changed()

        self.record(undo)
        if release:
            self.release(link.child)

    def replace_child(self, parent: Node, role: str, new_child: Node | None, *,
                      inherits: bool = False) -> None:
        """Point ``parent``'s ``role`` link at ``new_child`` (None: drop the link).

        As QEMU sets a file or backing link: a new child that inherited (through any
        number of nodes) from ``parent`` now inherits from it directly. The old child is
        released (deleted if unreferenced) when the change commits.
        """
        old = parent.children.get(role)
        if old is not None and new_child is not None and old.child is new_child:
            return
        update = new_child is not None and inherits_recursively(new_child, parent)
        if old is not None:
            self._flush_before_relink(old)
            self.detach(old, release=False)
            old_child = old.child
            self.on_commit(lambda: self._release_later(old_child))
        if new_child is not None:
            self.attach(parent, new_child, role, inherits=inherits or update)

    def _release_later(self, node: Node) -> None:
        if node.name in self.nodes and not node.parents and not node.monitor_owned:
            with self.transaction():
                self.remove_node(node)

    def insert_filter_above(self, filter_node: Node, below: Node, role: str = "file") -> None:
        """Move every parent of ``below`` onto ``filter_node`` and make ``below`` its child
        (the new filter joins ``below``'s iothread, as QEMU links it before it moves
        the parents)."""
        self.set(filter_node, "aio_context", below.aio_context)
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

    @staticmethod
    def _flush_before_relink(link: Child) -> None:
        """What a node wrote through a data child reaches it before the child changes
        (QEMU flushes the nodes a reopen touches)."""
        parent = link.parent
        if link.role != "backing" and isinstance(parent, Node) and parent.io is not None:
            try:
                parent.io.flush()
            except (OSError, ImageError) as exc:
                raise GraphError(f"Could not flush: {exc}") from exc

    def _move_link(self, link: Child, new_child: Node) -> None:
        self._flush_before_relink(link)
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
        if not dst.parents:      # a new overlay: it runs where its users do
            self.set(dst, "aio_context", src.aio_context)
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

    def attach_backend_root(self, backend: Backend, node: Node,
                            perms: tuple[int, int] | None = None) -> Child:
        """Insert ``node`` as the backend's medium / root (permissions refreshed);
        ``perms``: (perm, shared) of an internal user, instead of a device's."""
        self._join_contexts(backend, node)
        old_key = backend.key
        fixed = perms if perms is not None else P.backend_perms(
            backend.device_kind, backend.writable and not node.read_only,
            removable=backend.removable)
        link = Child(parent=backend, child=node, role="root", fixed=fixed,
                     perm=fixed[0], shared=fixed[1])
        if backend.key != old_key and self.g.has_node(old_key):
            self.g.remove_node(old_key)
        backend.root = link
        node.parents.insert(0, link)
        self.g.add_node(backend.key)
        self.g.add_edge(backend.key, node.name, key="root")
        self.io.changed()

        def undo() -> None:
            self._unlink(link)

        self.record(undo)
        self.refresh_perms([node])
        return link

    def detach_backend_root(self, backend: Backend) -> Node | None:
        link = backend.root
        if link is None:
            return None
        self.set(backend, "root_read_only", link.child.read_only)
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

        def undo() -> None:
            self.jobs.pop(job.job_id, None)
            if self.g.has_node(job.key):
                self.g.remove_node(job.key)

        self.record(undo)
        for role, node, perm, shared in links:
            self.attach(job, node, role, fixed=(perm, shared))
        self.refresh_perms([n for _, n, _, _ in links])
        return job

    def remove_job(self, job: JobParent) -> None:
        """Drop a job's links; every node it held has its permissions refreshed, as
        QEMU refreshes a node when a parent lets go of it (a layer that survives the
        job then shares again what the job did not)."""
        held = [link.child for link in job.links]
        for link in list(job.links):
            self.detach(link)
        self.jobs.pop(job.job_id, None)
        if self.g.has_node(job.key):
            self.g.remove_node(job.key)
        self.refresh_perms([n for n in held if self.nodes.get(n.name) is n])

    def freeze_chain(self, top: Node, base: Node | None, frozen: bool = True) -> None:
        """(Un)freeze every backing/filter link from ``top`` down to ``base`` (exclusive).

        A frozen link cannot be changed by reopen ("Cannot change frozen 'backing'
        link from 'A' to 'B'").
        """
        node: Node | None = top
        while node is not None and node is not base:
            role = node.spec.filtered_role or "backing"
            link = node.children.get(role)
            if link is None:
                break
            self.set(link, "frozen", frozen)
            node = link.child

    def unfreeze_chain(self, top: Node, base: Node | None) -> None:
        self.freeze_chain(top, base, frozen=False)

    def set_read_only(self, node: Node, read_only: bool) -> None:
        """Change a node's read-only flag, reopening its file or image at once.

        A new descriptor is opened now (through the old one), so a failure (a file
        that cannot be opened read-write) is an ordinary error the transaction rolls
        back; the node switches to it only when the transaction commits.
        """
        if node.read_only == read_only:
            return
        self.ro_before.setdefault(node.name, node.read_only)
        if node.io is not None:
            try:
                prepared = node.io.set_writable(not read_only)
            except OSError as exc:
                name = node.options.get("filename", node.name)
                text = exc.strerror or str(exc)
                if exc.filename is None and node.driver != "file":
                    raise GraphError(text) from exc
                raise GraphError(f"Could not open '{name}': {text}") from exc
            if prepared is not None:
                self.record(prepared.abort)
                self.on_commit(prepared.commit)
        self.set(node, "read_only", read_only)

    # -- permissions ----------------------------------------------------------------
    def refresh_perms(self, seeds: list[Node]) -> None:
        """Recompute permissions below ``seeds`` and check them, as QEMU does on every
        graph change (see :mod:`engine.graph.permcheck`)."""
        permcheck.refresh_perms(self, seeds)

    def check_node_perms(self, node: Node) -> None:
        permcheck.check_node_perms(self, node)

    # -- paths ----------------------------------------------------------------------
    def open_host_file(self, filename: str, *, writable: bool) -> HostFile:
        """Open ``filename`` (once: the node keeps the descriptor) with QEMU's texts;
        under a root, beneath it (see :class:`~engine.formats.hostfile.HostFS`)."""
        try:
            return self.hostfs.open(filename, writable=writable)
        except NotRegularFile as exc:
            raise GraphError(f"'file' driver requires '{filename}' to be a regular file") \
                from exc
        except OSError as exc:
            raise GraphError(f"Could not open '{filename}': {exc.strerror}") from exc

    def close(self) -> None:
        self.io.event_throttle.cancel()     # held events die with the process in QEMU
        for node in self.nodes.values():
            self._close_io(node)
        self.hostfs.close()

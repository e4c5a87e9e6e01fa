"""The vertices and edges of the live block graph.

:class:`Node` — a block driver state (``qcow2``, ``raw``, ``file``, ``null-co``,
job filters such as ``copy-on-read``/``commit_top``/``mirror_top``), whose ``io`` is
its driver instance (:mod:`engine.graph.io`); :class:`Backend` — a BlockBackend: a
device's disk or CD-ROM drive, an export, or a job's internal backend;
:class:`JobParent` — a block job holding nodes; :class:`Child` — ``parent --role-->
child`` with permissions and a frozen flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.formats.image import Image
from engine.graph import perms as P
from engine.graph.accounting import BlockAcctStats
from engine.graph.drivers import Driver
from engine.graph.drivers import driver as driver_entry
from engine.graph.io.base import NodeIO
from engine.graph.rules.errors import RuleViolation
from engine.graph.snapshot import BLOCK_BACKEND, BLOCK_JOB, BLOCK_NODE

#: A graph operation refused: the one refusal type with QEMU's text (a GenericError).
GraphError = RuleViolation


@dataclass(eq=False)
class Child:
    """One child link (its child *inherits* from the parent when it was created from the
    parent's options: see :attr:`Node.inherits_from`)."""

    parent: Node | Backend | JobParent
    child: Node
    role: str
    perm: int = 0
    shared: int = P.ALL
    frozen: bool = False
    #: For job and backend links: fixed permissions chosen by the owner.
    fixed: tuple[int, int] | None = None

    def describe_parent(self) -> str:
        return self.parent.describe()

    @property
    def inherits(self) -> bool:
        """The child follows this parent's options (reopen queues it with the parent)."""
        return self.child.inherits_from is self.parent


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
    #: the driver instance: reads and writes through the node's current children
    io: NodeIO | None = None
    #: file nodes: the identity (st_dev, st_ino) of the host file (image locking)
    file_id: tuple[int, int] | None = None
    #: the node whose options this one was created from (QEMU's inherits_from): an
    #: inline child or a backing opened from a header; a reopen of that node reopens
    #: this one too. It survives a filter inserted in between.
    inherits_from: Node | None = None
    seq: int = 0
    monitor_owned: bool = False
    implicit: bool = False
    children: dict[str, Child] = field(default_factory=dict)
    parents: list[Child] = field(default_factory=list)   # newest first
    header_backing: str | None = None
    header_backing_format: str | None = None
    auto_backing_file: str | None = None
    #: the iothread the node runs in ("": the main loop; see rules.contexts)
    aio_context: str = ""
    cum_perm: int = 0
    cum_shared: int = P.ALL
    #: the end of the furthest write this node has served (QEMU's wr_highest_offset,
    #: kept per node for every write request that reached it, whoever made it)
    wr_highest_offset: int = 0

    kind = BLOCK_NODE

    def note_write(self, offset: int, length: int) -> None:
        """A write of ``length`` bytes at ``offset`` reached this node."""
        if length and offset + length > self.wr_highest_offset:
            self.wr_highest_offset = offset + length

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

    @property
    def spec(self) -> Driver:
        """The driver's entry in the driver table."""
        return driver_entry(self.driver)

    @property
    def image(self) -> Image | None:
        """The format image the node interprets (qcow2), for its header facts."""
        return self.io.image if self.io is not None else None

    @property
    def host_name(self) -> str | None:
        """A ``file`` node's host file name as given."""
        return self.io.host_name() if self.io is not None else None

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
    #: a removable device without a tray (a floppy drive): its medium goes in and out
    #: without one, and tray commands leave it alone
    trayless: bool = False
    #: the device keeps an I/O status (IDE, SCSI and virtio devices do, a floppy not)
    io_status: bool = True
    tray_open: bool = False
    locked: bool = False
    #: QEMU's root state: whether the last medium taken out was read-only (None: none
    #: was); a medium changed in with read-only-mode 'retain' opens the same way
    root_read_only: bool | None = None
    qdev: str | None = None
    root: Child | None = None
    #: the iothread the backend runs in ("": the main loop)
    aio_context: str = ""
    #: the accounting of the guest's requests on this backend (``query-blockstats``)
    stats: BlockAcctStats = field(default_factory=BlockAcctStats)
    kind = BLOCK_BACKEND

    @property
    def context_fixed(self) -> bool:
        """A guest device's backend (or an anonymous one) keeps its iothread: the graph
        below cannot be moved to another (QEMU's blk_root_change_aio_ctx)."""
        return self.device_kind == "device" and (self.qdev is not None or not self.name)

    @property
    def has_tray(self) -> bool:
        return self.removable and not self.trayless

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
    #: the iothread the job runs in ("": the main loop)
    aio_context: str = ""
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


def inherits_recursively(child: Node, parent: Node) -> bool:
    """QEMU's bdrv_inherits_from_recursive: ``parent`` is reached from ``child`` going
    through ``inherits_from``."""
    node: Node | None = child
    while node is not None and node is not parent:
        node = node.inherits_from
    return node is not None


def links_of(owner: Owner) -> list[Child]:
    """The child links an owner holds (a node's children, a backend's root, a job's)."""
    if isinstance(owner, Node):
        return list(owner.children.values())
    if isinstance(owner, Backend):
        return [owner.root] if owner.root is not None else []
    return list(owner.links)


def virtual_size(node: Node) -> int:
    """The size a node presents, as QEMU reports it (host files in whole sectors)."""
    if node.io is None:
        return 0
    try:
        node.io.refresh()
        return node.io.length()
    except OSError:
        return 0

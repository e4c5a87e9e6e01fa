"""The driver table: what each QEMU 7.2 block driver is, its options and its children.

One entry for every block driver of QEMU 7.2 (the ``BlockdevDriver`` values and the
jobs' internal filters), used by every part of the project that asks about a driver —
opening (:mod:`engine.graph.opening`), permissions (:mod:`engine.graph.perms`),
filenames (:mod:`engine.graph.filenames`), QEMU's rules (:mod:`engine.graph.rules`,
which the editor's preflight also runs on graphs of a remote QEMU), the queries, and
the editor (card colours, chain folding, the layers a reader goes through). The
drivers the bundled engine implements are those with an ``io`` class; the others are
here because a remote QEMU's graph holds them.

To teach the engine a driver, give its entry an ``io`` class (a
:class:`~engine.graph.io.base.NodeIO` taking ``(node, ctx)``) and the facts below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from engine.graph.io.base import NodeIO
from engine.graph.io.compress import CompressIO
from engine.graph.io.copy_on_read import CopyOnReadIO
from engine.graph.io.filters import BackingFilterIO
from engine.graph.io.formats import Qcow2IO, RawIO
from engine.graph.io.preallocate import PreallocateIO
from engine.graph.io.protocol import FileIO, NullIO
from engine.graph.io.quorum import QuorumIO
from engine.graph.io.throttle import ThrottleIO


class Kind(StrEnum):
    PROTOCOL = "protocol"   # bottom of a chain: a host file, a network export, nothing
    FORMAT = "format"       # interprets its ``file`` child (and maybe has a backing)
    FILTER = "filter"       # one child, requests passed through (QEMU's is_filter)


@dataclass(frozen=True)
class Driver:
    """One block driver (the facts are QEMU 7.2's)."""

    name: str
    kind: Kind
    #: has a ``backing`` child (QEMU's supports_backing: a COW format)
    cow: bool = False
    #: for filters: the role of the child requests go to
    filtered_role: str | None = None
    #: options that make a node's filename a ``json:`` one (QEMU's strong_runtime_opts)
    strong_options: tuple[str, ...] = ()
    #: options ``blockdev-reopen`` cannot change or reset
    immutable_options: tuple[str, ...] = ()
    #: options ``blockdev-reopen`` may change but not reset to their default (those the
    #: driver's reopen reads, without QEMU's mutable_opts)
    unresettable_options: tuple[str, ...] = ()
    #: ``blockdev-reopen`` supports it
    reopen: bool = False
    #: a filter a block job inserts (auto-named ones are *implicit*)
    job_filter: bool = False
    #: the filter asks for write-unchanged on its child (it may write what it read)
    writes_unchanged: bool = False
    #: the node's I/O; None: the bundled engine does not open this driver
    io: type[NodeIO] | None = None
    #: the format driver has ``bdrv_refresh_filename`` of its own (never the file's name)
    own_filename: bool = False
    #: the driver takes compressed writes (QEMU's block_driver_can_compress): a
    #: ``compress`` filter may sit on it
    compresses: bool = False
    #: the option naming a list of children, linked as ``<option>.N`` (``quorum``): the
    #: node passes requests to several children
    child_list: str | None = None
    #: passes requests to its ``file`` child without being one of QEMU's filters
    #: (``snapshot-access`` reads the snapshot of the copy-before-write node below)
    reads_through: bool = False
    #: a jobs' filter QAPI's ``BlockdevDriver`` does not list: never given by a user
    internal: bool = False
    #: the QEMU module that brings the driver (``block-<module>.so``, Debian's
    #: qemu-block-extra; ``blkio``: a build with libblkio); None: built in
    module: str | None = None

    @property
    def is_filter(self) -> bool:
        return self.kind is Kind.FILTER

    @property
    def is_protocol(self) -> bool:
        return self.kind is Kind.PROTOCOL

    @property
    def is_format(self) -> bool:
        return self.kind is Kind.FORMAT

    @property
    def fans_out(self) -> bool:
        """Passes requests to several children (``quorum``)."""
        return self.child_list is not None

    @property
    def holds_data(self) -> bool:
        """The node's data is its own (an image, a host file, a network export); False:
        it passes requests on to one child (a filter) or several (``quorum``)."""
        return not (self.is_filter or self.fans_out or self.reads_through)

    @property
    def is_image(self) -> bool:
        """A format whose data is its own: a layer of a disk chain (qcow2, raw, vmdk…)."""
        return self.is_format and self.holds_data


_FILE_IMMUTABLE = ("filename", "locking", "aio", "aio-max-batch", "pr-manager", "drop-cache")
_NULL_IMMUTABLE = ("size", "latency-ns", "read-zeroes")
#: protocols the bundled engine does not open (network exports, devices, a directory)
_REMOTE_PROTOCOLS = (
    "nbd", "iscsi", "nfs", "ssh", "http", "https", "ftp", "ftps", "gluster", "rbd", "nvme",
    "io_uring", "nvme-io_uring", "virtio-blk-vfio-pci", "virtio-blk-vhost-user",
    "virtio-blk-vhost-vdpa", "vvfat",
)
_MODULES = {
    **dict.fromkeys(("http", "https", "ftp", "ftps"), "curl"),
    **{n: n for n in ("iscsi", "nfs", "ssh", "gluster", "rbd")},
    **dict.fromkeys(("io_uring", "nvme-io_uring", "virtio-blk-vfio-pci",
                     "virtio-blk-vhost-user", "virtio-blk-vhost-vdpa"), "blkio"),
}


def _entries() -> list[Driver]:
    P, F, X = Kind.PROTOCOL, Kind.FORMAT, Kind.FILTER
    return [
        Driver("file", P, strong_options=("filename",), immutable_options=_FILE_IMMUTABLE,
               reopen=True, io=FileIO),
        Driver("host_device", P, strong_options=("filename",),
               immutable_options=_FILE_IMMUTABLE[:-1], reopen=True),
        Driver("host_cdrom", P, strong_options=("filename",),
               immutable_options=_FILE_IMMUTABLE[:-1], reopen=True),
        Driver("null-co", P, strong_options=("size", "read-zeroes"),
               immutable_options=_NULL_IMMUTABLE, reopen=True, io=NullIO),
        Driver("null-aio", P, strong_options=("size", "read-zeroes"),
               immutable_options=_NULL_IMMUTABLE, reopen=True, io=NullIO),
        *[Driver(n, P, module=_MODULES.get(n)) for n in _REMOTE_PROTOCOLS],
        Driver("qcow2", F, cow=True, reopen=True, io=Qcow2IO, compresses=True),
        Driver("raw", F, strong_options=("offset", "size"), reopen=True, io=RawIO),
        *[Driver(n, F, cow=True, reopen=True, compresses=n != "qed")
          for n in ("qcow", "qed", "vmdk")],
        *[Driver(n, F, reopen=True) for n in ("vdi", "vhdx", "vpc")],
        *[Driver(n, F) for n in ("parallels", "bochs", "cloop", "dmg", "luks")],
        Driver("quorum", F, strong_options=(
            "vote-threshold", "blkverify", "rewrite-corrupted", "read-pattern"),
            io=QuorumIO, child_list="children"),
        Driver("copy-on-read", X, filtered_role="file", job_filter=True,
               writes_unchanged=True, io=CopyOnReadIO, compresses=True),
        Driver("snapshot-access", F, reads_through=True),
        Driver("commit_top", X, filtered_role="backing", job_filter=True,
               io=BackingFilterIO, own_filename=True, internal=True),
        Driver("mirror_top", X, filtered_role="backing", job_filter=True,
               io=BackingFilterIO, own_filename=True, internal=True),
        Driver("throttle", X, filtered_role="file", strong_options=("throttle-group",),
               reopen=True, io=ThrottleIO, compresses=True),
        Driver("preallocate", X, filtered_role="file", reopen=True, io=PreallocateIO,
               unresettable_options=("prealloc-align", "prealloc-size")),
        Driver("compress", X, filtered_role="file", io=CompressIO),
        Driver("blkdebug", X, filtered_role="image", reopen=True),
        Driver("copy-before-write", X, filtered_role="file"),
        *[Driver(n, X, filtered_role=r) for n, r in (
            ("blklogwrites", "file"), ("blkreplay", "image"), ("blkverify", "raw"),
            ("replication", "file"))],
    ]


DRIVERS: dict[str, Driver] = {d.name: d for d in _entries()}
#: what an unknown name is taken for (a format without a backing, not opened)
_UNKNOWN = Driver("", Kind.FORMAT)


def _names(test: Callable[[Driver], bool]) -> frozenset[str]:
    return frozenset(d.name for d in DRIVERS.values() if test(d))


#: protocols: the bottom of a chain
PROTOCOL_DRIVERS = _names(lambda d: d.is_protocol)
#: QEMU's filters (``is_filter``): one child, requests passed through
FILTER_DRIVERS = _names(lambda d: d.is_filter)
#: drivers with no data of their own (filters, ``quorum``, ``snapshot-access``)
PASS_THROUGH_DRIVERS = _names(lambda d: not d.holds_data)
#: formats whose data is their own: the layers of a disk chain
IMAGE_DRIVERS = _names(lambda d: d.is_image)
#: formats with a ``backing`` child (COW formats)
BACKING_DRIVERS = _names(lambda d: d.cow)
#: image formats the bundled engine reads and writes (:mod:`engine.formats`)
ENGINE_IMAGE_DRIVERS = _names(lambda d: d.is_image and d.io is not None)
#: jobs' filters that QAPI's ``BlockdevDriver`` does not list
INTERNAL_DRIVERS = _names(lambda d: d.internal)


def driver(name: str) -> Driver:
    """The table entry for ``name`` (an unknown name: a format the engine cannot open)."""
    return DRIVERS.get(name, _UNKNOWN)


def opens(name: str) -> bool:
    """Can the bundled engine open nodes of driver ``name``?"""
    return driver(name).io is not None


def cow(name: str) -> bool:
    return driver(name).cow


def filtered_role(name: str) -> str | None:
    """The role of the child a filter passes requests to (None: not a filter)."""
    return driver(name).filtered_role

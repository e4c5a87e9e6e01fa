"""The driver table: what each QEMU 7.2 block driver is, its options and its children.

One entry per driver name, used by every part of the engine that asks about a
driver — opening (:mod:`engine.graph.opening`), permissions (:mod:`engine.graph.perms`),
filenames (:mod:`engine.graph.filenames`), QEMU's rules (:mod:`engine.graph.rules`,
which the editor's preflight also runs on graphs of a remote QEMU, so drivers the
bundled engine cannot open are listed too) and the queries.

To teach the engine a driver, give its entry an ``io`` class (a
:class:`~engine.graph.io.base.NodeIO` taking ``(node, ctx)``) and the facts below.
"""

from __future__ import annotations

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
    #: the option naming a list of children, linked as ``<option>.N`` (``quorum``)
    child_list: str | None = None

    @property
    def is_filter(self) -> bool:
        return self.kind is Kind.FILTER

    @property
    def is_protocol(self) -> bool:
        return self.kind is Kind.PROTOCOL

    @property
    def is_format(self) -> bool:
        return self.kind is Kind.FORMAT


_FILE_IMMUTABLE = ("filename", "locking", "aio", "aio-max-batch", "pr-manager", "drop-cache")
_NULL_IMMUTABLE = ("size", "latency-ns", "read-zeroes")


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
        Driver("commit_top", X, filtered_role="backing", job_filter=True,
               io=BackingFilterIO, own_filename=True),
        Driver("mirror_top", X, filtered_role="backing", job_filter=True,
               io=BackingFilterIO, own_filename=True),
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

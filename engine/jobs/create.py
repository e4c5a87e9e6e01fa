"""``blockdev-create``: make an image file as a job (``file`` and ``qcow2``).

As in QEMU 7.2 the command answers ``{}`` at once and the job (type ``create``,
not a block job) goes created → running → waiting → pending → concluded and
stays concluded until ``job-dismiss``. Everything that can go wrong with the
options — an unknown node, a missing directory, a bad cluster size, a
permission conflict — is the *job's* error (``query-jobs`` ``error``), not the
command's; the command itself only refuses a taken or malformed job id.

The file is opened (a ``file`` create: created, nothing truncated) when the
command runs, by descriptor, so the job works on the file the command named even
if the name changes meanwhile. The job makes every check QEMU makes — option
checks, image locks held by the engine's own nodes, permissions of a node's other
users — before its first write.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.formats.create import format_qcow2
from engine.formats.errors import ImageError
from engine.formats.hostfile import HostFile
from engine.formats.store import ByteStore
from engine.graph import perms as P
from engine.graph.model import BlockGraph, GraphError, Node
from engine.graph.permcheck import lock_conflict_with
from engine.jobs.errors import JobFailed
from engine.jobs.job import Job, JobDriver

#: what QEMU's ``file`` create takes on the new file, and shares with others
FILE_CREATE_PERMS = (P.WRITE | P.RESIZE, P.ALL & ~P.RESIZE)


@dataclass
class Target:
    """The file a create job writes: opened at command time (or why it could not be)."""

    store: ByteStore | None = None
    #: the job closes it (a file it opened; not a node's)
    owned: bool = False
    #: a node given by reference (its other users are checked for permissions)
    node: Node | None = None
    problem: str | None = None

    def close(self) -> None:
        if self.owned and self.store is not None:
            self.store.close()
            self.store = None


class CreateDriver(JobDriver):
    """Creates one image; every check runs before the first write."""

    job_type = "create"
    is_block_job = False

    def __init__(self, graph: BlockGraph, lock: threading.RLock, options: dict[str, Any],
                 target: Target) -> None:
        self.graph = graph
        self.lock = lock
        self.options = options
        self.target = target

    def run(self, job: Job) -> Iterator[Any]:
        job.set_remaining(1)
        yield
        try:
            if self.target.problem is not None:
                raise JobFailed(errno.EINVAL, self.target.problem)
            if self.options["driver"] == "file":
                self._create_file()
            else:
                self._create_qcow2()
        finally:
            self.target.close()
            job.progress(1)

    def _create_file(self) -> None:
        """QEMU's file create on the descriptor: image locks, then truncate, then size."""
        store = self.target.store
        assert isinstance(store, HostFile)
        with self.lock:
            conflict = lock_conflict_with(self.graph, store.identity(), *FILE_CREATE_PERMS)
        if conflict:
            raise JobFailed(errno.EAGAIN, conflict)
        size = self.options["size"]
        try:
            store.truncate(0)
        except OSError as exc:
            raise JobFailed(exc.errno or errno.EIO,
                            f"Could not resize file: {os.strerror(exc.errno or 0)}") from exc
        grow_file(store, size, self.options.get("preallocation", "off"))

    def _create_qcow2(self) -> None:
        opts = self.options
        problem = qcow2_option_problem(opts)
        if problem is not None:
            raise JobFailed(errno.EINVAL, problem)
        with self.lock:
            conflict = self._permission_problem()
        if conflict is not None:
            raise JobFailed(errno.EPERM, conflict)
        store = self.target.store
        assert store is not None
        try:
            metadata_end = format_qcow2(store, opts["size"], backing_file=opts.get("backing-file"),
                         backing_format=opts.get("backing-fmt"),
                         cluster_size=opts.get("cluster-size", 65536),
                         version=2 if opts.get("version") == "v2" else 3,
                         refcount_bits=opts.get("refcount-bits", 16),
                         lazy_refcounts=bool(opts.get("lazy-refcounts", False)),
                         extended_l2=bool(opts.get("extended-l2", False)),
                         probe_backing=False,
                         preallocation=opts.get("preallocation", "off"))
            _fill_holes(store, metadata_end)
        except ImageError as exc:
            raise JobFailed(errno.EINVAL, str(exc)) from exc
        except OSError as exc:
            raise JobFailed(exc.errno or errno.EIO, str(exc)) from exc

    def _permission_problem(self) -> str | None:
        """QEMU's format step takes write and resize on the file: other users of a node
        must share them; a file opened inline must not be locked by the engine's nodes."""
        node = self.target.node
        want = P.WRITE | P.RESIZE
        if node is None:
            store = self.target.store
            assert isinstance(store, HostFile)
            return lock_conflict_with(self.graph, store.identity(), want | P.CONSISTENT_READ,
                                      P.ALL)
        for link in node.parents:
            if want & ~link.shared:
                return (f"Permission conflict on node '{node.name}': permissions "
                        f"'{P.text_names(want)}' are both required by an unnamed block device "
                        f"(uses node '{node.name}' as 'root' child) and unshared by "
                        f"{link.parent.describe()} (uses node '{node.name}' as '{link.role}' "
                        "child).")
        if node.file_id is not None:
            return lock_conflict_with(self.graph, node.file_id, node.cum_perm | want,
                                      node.cum_shared, besides=node)
        return None


def grow_file(store: HostFile, size: int, prealloc: str) -> None:
    """An empty file to ``size`` with QEMU's preallocation modes and error texts."""
    def fail(exc: OSError, text: str) -> JobFailed:
        return JobFailed(exc.errno or errno.EIO, f"{text}: {os.strerror(exc.errno or 0)}")

    if prealloc == "off":
        try:
            store.truncate(size)
        except OSError as exc:
            raise fail(exc, "Could not resize file") from exc
        _allocate_first_block(store, size)
    elif prealloc == "falloc":
        try:
            if size:
                assert store.fd is not None
                os.posix_fallocate(store.fd, 0, size)
        except OSError as exc:
            raise fail(exc, "Could not preallocate new data") from exc
        _allocate_first_block(store, size)
    elif prealloc == "full":
        try:
            store.truncate(size)
        except OSError as exc:
            raise fail(exc, "Could not resize file") from exc
        zeros = bytes(min(size, 1 << 20))
        try:
            for offset in range(0, size, len(zeros) or 1):
                store.pwrite(zeros[:size - offset], offset)
            store.sync()
        except OSError as exc:
            raise fail(exc, "Could not write zeros for preallocation") from exc
    else:
        raise JobFailed(errno.ENOTSUP, f"Unsupported preallocation mode: {prealloc}")


def _allocate_first_block(store: HostFile, size: int) -> None:
    """QEMU writes the first block of a new file (so later alignment probes read real
    blocks); a failure is ignored, as there."""
    if size:
        with contextlib.suppress(OSError):
            store.pwrite(bytes(min(size, max(4096, mmap.PAGESIZE))), 0)


def qcow2_option_problem(opts: dict[str, Any]) -> str | None:
    """QEMU's qcow2 create checks on the options, in its order (None: all good)."""
    if opts["size"] % 512:
        return "Image size must be a multiple of 512 bytes"
    version = 2 if opts.get("version") == "v2" else 3
    extended = bool(opts.get("extended-l2", False))
    if extended and version < 3:
        return ("Extended L2 entries are only supported with compatibility level 1.1 and "
                "above (use version=v3 or greater)")
    cluster = opts.get("cluster-size", 65536)
    if cluster < 512 or cluster > (2 << 20) or cluster & (cluster - 1):
        return "Cluster size must be a power of two between 512 and 2048k"
    if extended and cluster < 16384:
        return "Extended L2 entries are only supported with cluster sizes of at least 16384 bytes"
    prealloc = opts.get("preallocation", "off")
    if "backing-file" in opts and prealloc != "off" and not extended:
        return ("Backing file and preallocation can only be used at the same time if "
                "extended_l2 is on")
    if "backing-fmt" in opts and "backing-file" not in opts:
        return "Backing format cannot be used without backing file"
    if opts.get("lazy-refcounts") and version < 3:
        return ("Lazy refcounts only supported with compatibility level 1.1 and above "
                "(use version=v3 or greater)")
    bits = opts.get("refcount-bits", 16)
    if bits > 64 or bits < 1 or bits & (bits - 1):
        return "Refcount width must be a power of two and may not exceed 64 bits"
    if version < 3 and bits != 16:
        return ("Different refcount widths than 16 bits require compatibility level 1.1 "
                "or above (use version=v3 or greater)")
    for key in ("encrypt", "data-file", "data-file-raw"):
        if key in opts:
            return f"qcow2 option '{key}' is not supported by the bundled engine"
    if opts.get("compression-type") == "zstd":
        return "qcow2 option 'compression-type' is not supported by the bundled engine"
    return None


def _fill_holes(store: ByteStore, metadata_end: int) -> None:
    """Write the new image's metadata clusters out in full, zeros included.

    QEMU's blockdev-create writes every metadata cluster it lays out, so that part of
    the file has no holes; the same bytes written sparsely would be allocated
    differently. Preallocated data after the metadata stays as it was made.
    """
    size = min(store.size(), metadata_end)
    if size <= 64 << 20:
        data = store.pread(size, 0)
        store.pwrite(data, 0)
        store.sync()


def open_target(graph: BlockGraph, opts: dict[str, Any]) -> Target:
    """The file a create job will write, opened now by descriptor."""
    try:
        if opts["driver"] == "file":
            return _file_target(graph, opts)
        return _qcow2_target(graph, opts["file"])
    except GraphError as exc:
        return Target(problem=str(exc))


def _file_target(graph: BlockGraph, opts: dict[str, Any]) -> Target:
    if opts.get("extent-size-hint", 0) > 0xFFFFFFFF:
        return Target(problem="Extent size hint is too large")
    name = opts["filename"]
    try:
        return Target(store=graph.hostfs.create(name), owned=True)
    except OSError as exc:
        return Target(problem=f"Could not create '{name}': {exc.strerror}")


def _qcow2_target(graph: BlockGraph, ref: Any) -> Target:
    if isinstance(ref, str):
        node = graph.find(ref)
        if node is None:
            return Target(problem=f"Cannot find device='{ref}' nor node-name='{ref}'")
        if node.io is None:
            return Target(problem="The bundled engine cannot create images on this node")
        node.io.refresh()
        return Target(store=node.io.store(), node=node)
    if ref.get("driver") != "file" or "filename" not in ref:
        return Target(problem="The bundled engine creates images on 'file' nodes only")
    return Target(store=graph.open_host_file(ref["filename"], writable=True), owned=True)

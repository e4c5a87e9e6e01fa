"""``blockdev-create``: make an image file as a job (``file`` and ``qcow2``).

As in QEMU 7.2 the command answers ``{}`` at once and the job (type ``create``,
not a block job) goes created → running → waiting → pending → concluded and
stays concluded until ``job-dismiss``. Everything that can go wrong with the
options — an unknown node, a missing directory, a bad cluster size, a
permission conflict — is the *job's* error (``query-jobs`` ``error``), not the
command's; the command itself only refuses a taken or malformed job id.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.graph import perms as P
from engine.graph.model import BlockGraph, GraphError
from engine.jobs.engine_jobs import jobs_of, qmp_errors
from engine.jobs.errors import JobCommandError, JobFailed
from engine.jobs.job import Job, JobDriver
from engine.qmp.block_schema import BlockdevRef, Driver
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Enum, Int, Str, Struct, Union, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

_PREALLOC = Enum("PreallocMode", ["off", "metadata", "falloc", "full"])

BlockdevCreateOptions = Union("BlockdevCreateOptions", members({"driver": Driver}), variants={
    "file": members({"filename": Str(), "size": Int(non_negative=True),
                     "*preallocation": _PREALLOC, "*nocow": Bool(),
                     "*extent-size-hint": Int(non_negative=True)}),
    "qcow2": members({"file": BlockdevRef, "*data-file": BlockdevRef, "*data-file-raw": Bool(),
                      "*extended-l2": Bool(), "size": Int(non_negative=True),
                      "*version": Enum("BlockdevQcow2Version", ["v2", "v3"]),
                      "*backing-file": Str(), "*backing-fmt": Driver, "*encrypt": BlockdevRef,
                      "*cluster-size": Int(non_negative=True), "*preallocation": _PREALLOC,
                      "*lazy-refcounts": Bool(), "*refcount-bits": Int(),
                      "*compression-type": Enum("Qcow2CompressionType", ["zlib", "zstd"])}),
    "raw": (),
})

BLOCKDEV_CREATE = Struct("blockdev-create", members({"job-id": Str(),
                                                     "options": BlockdevCreateOptions}))


class CreateDriver(JobDriver):
    """Creates one image file; ``problem`` is an error found while resolving options."""

    job_type = "create"
    is_block_job = False

    def __init__(self, options: dict[str, Any], path: str | None, problem: str | None) -> None:
        self.options = options
        self.path = path
        self.problem = problem

    def run(self, job: Job) -> Iterator[Any]:
        job.set_remaining(1)
        yield
        try:
            if self.problem is not None:
                raise JobFailed(errno.EINVAL, self.problem)
            assert self.path is not None
            if self.options["driver"] == "file":
                _create_file(self.path, self.options)
            else:
                _create_qcow2(self.path, self.options)
        finally:
            job.progress(1)


def _create_file(path: str, opts: dict[str, Any]) -> None:
    prealloc = opts.get("preallocation", "off")
    if prealloc == "metadata":
        raise JobFailed(errno.ENOTSUP, "Unsupported preallocation mode 'metadata'")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise JobFailed(exc.errno or errno.EIO,
                        f"Could not create '{opts['filename']}': {os.strerror(exc.errno or 0)}"
                        ) from exc
    try:
        os.ftruncate(fd, opts["size"])
        if prealloc in ("falloc", "full") and opts["size"]:
            os.posix_fallocate(fd, 0, opts["size"])
    except OSError as exc:
        raise JobFailed(exc.errno or errno.EIO,
                        f"Could not resize file: {os.strerror(exc.errno or 0)}") from exc
    finally:
        os.close(fd)


def _create_qcow2(path: str, opts: dict[str, Any]) -> None:
    from engine.formats import create_qcow2
    from engine.formats.errors import ImageError

    size = opts["size"]
    if size % 512:
        raise JobFailed(errno.EINVAL, "Image size must be a multiple of 512 bytes")
    cluster = opts.get("cluster-size", 65536)
    if cluster < 512 or cluster > (2 << 20) or cluster & (cluster - 1):
        raise JobFailed(errno.EINVAL,
                        "Cluster size must be a power of two between 512 and 2048k")
    version = 2 if opts.get("version") == "v2" else 3
    for key, bad in (("encrypt", None), ("data-file", None), ("extended-l2", True),
                     ("lazy-refcounts", True), ("compression-type", "zstd")):
        if key in opts and (bad is None or opts[key] == bad):
            raise JobFailed(errno.ENOTSUP,
                            f"qcow2 option '{key}' is not supported by the bundled engine")
    if opts.get("preallocation", "off") != "off":
        raise JobFailed(errno.ENOTSUP,
                        "qcow2 preallocation is not supported by the bundled engine")
    try:
        create_qcow2(path, size, backing_file=opts.get("backing-file"),
                     backing_format=opts.get("backing-fmt"), cluster_size=cluster,
                     version=version, refcount_bits=opts.get("refcount-bits", 16))
        _fill_holes(path)
    except ImageError as exc:
        raise JobFailed(errno.EINVAL, str(exc)) from exc
    except OSError as exc:
        raise JobFailed(exc.errno or errno.EIO, str(exc)) from exc


def _fill_holes(path: str) -> None:
    """Write the new image's metadata clusters out in full, zeros included.

    QEMU's blockdev-create writes every metadata cluster it lays out, so the file has
    no holes (``actual-size`` = the whole file); the same bytes written sparsely would
    report less. A fresh image is a few clusters, so rewriting it is cheap.
    """
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size <= 64 << 20:
            data = os.pread(fd, size, 0)
            os.pwrite(fd, data, 0)
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _resolve_file(graph: BlockGraph, ref: Any) -> str:
    """The host path behind a qcow2 create's ``file``; raises the job's error text."""
    if isinstance(ref, str):
        node = graph.find(ref)
        if node is None:
            raise JobFailed(errno.ENOENT, f"Cannot find device='{ref}' nor node-name='{ref}'")
        if node.driver != "file" or node.host_name is None:
            raise JobFailed(errno.ENOTSUP, "The bundled engine creates images on 'file' "
                                           "nodes only")
        for link in node.parents:
            missing = (P.WRITE | P.RESIZE) & ~link.shared
            if missing:
                raise JobFailed(errno.EPERM, (
                    f"Permission conflict on node '{node.name}': permissions "
                    f"'{P.text_names(P.WRITE | P.RESIZE)}' are both required by an unnamed "
                    f"block device (uses node '{node.name}' as 'root' child) and unshared by "
                    f"{link.parent.describe()} (uses node '{node.name}' as '{link.role}' "
                    "child)."))
        return graph.host_path(node.host_name)
    if ref.get("driver") != "file" or "filename" not in ref:
        raise JobFailed(errno.ENOTSUP, "The bundled engine creates images on 'file' nodes only")
    path = graph.host_path(ref["filename"])
    if not os.path.exists(path):
        raise JobFailed(errno.ENOENT,
                        f"Could not open '{ref['filename']}': No such file or directory")
    return path


@command("blockdev-create", BLOCKDEV_CREATE)
@qmp_errors
def blockdev_create(engine: Engine, args: dict[str, Any]) -> Any:
    opts = args["options"]
    driver = opts["driver"]
    if driver not in ("file", "qcow2"):
        if driver == "raw":
            raise JobCommandError("Driver does not support blockdev-create")
        raise JobCommandError(f"Driver '{driver}' is not supported by the bundled engine")
    graph = engine.graph
    mgr = jobs_of(engine)
    mgr.check_new_id(args["job-id"])
    path: str | None = None
    problem: str | None = None
    try:
        if driver == "file":
            path = graph.host_path(opts["filename"])
        else:
            path = _resolve_file(graph, opts["file"])
    except JobFailed as exc:
        problem = exc.message
    except GraphError as exc:
        problem = str(exc)
    job = mgr.create(args["job-id"], CreateDriver(opts, path, problem), auto_dismiss=False)
    job.start()
    return {}

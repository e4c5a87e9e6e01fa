"""The corpus: block graphs as real hosts have them, each produced by real QEMU 7.2.

Every graph is a recipe: images made with ``qemu-img``/``qemu-io`` in a directory,
the command line QEMU is started with (``-blockdev``/``--blockdev``, ``-device``,
``-object`` as users and libvirt give them), and QMP sent once it runs (jobs). The graph
itself is whatever QEMU makes of that: auto-named nodes, ``json:`` file names,
permissions, job filters and frozen links are QEMU's, read back with its queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.qemu import create, qemu_io

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class CorpusGraph:
    """How to make one graph: ``program`` is "qsd" or "qemu-system"."""

    name: str
    program: str
    images: Callable[[Path], None]
    args: Callable[[Path], list[str]]
    #: QMP (command, arguments) sent after start, in order (``{dir}`` in strings is
    #: replaced by the directory)
    setup: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: jobs the setup starts: wait until each has this status before reading the graph
    settle: dict[str, str] = field(default_factory=dict)
    #: image files (in the graph's directory) every removable device is offered
    media: tuple[str, ...] = ()


def _blockdev(program: str, options: dict[str, Any]) -> list[str]:
    flag = "--blockdev" if program == "qsd" else "-blockdev"
    return [flag, json.dumps(options)]


def _file(path: Path, name: str | None = None, **extra: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"driver": "file", "filename": str(path)}
    if name:
        opts["node-name"] = name
    opts.update(extra)
    return opts


# -- chains opened from image headers ---------------------------------------------------
def _header_images(d: Path) -> None:
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 0x11 0 256k")
    create(d / "mid.qcow2", MiB, backing="base.qcow2")        # relative, as qemu-img users do
    qemu_io(d / "mid.qcow2", "write -P 0x22 256k 256k")
    create(d / "top.qcow2", MiB, backing=str(d / "mid.qcow2"))
    create(d / "spare.qcow2", MiB)


def _header_args(d: Path) -> list[str]:
    return [*_blockdev("qsd", {"driver": "qcow2", "node-name": "top",
                               "file": _file(d / "top.qcow2")}),
            *_blockdev("qsd", _file(d / "spare.qcow2", "spare-file")),
            *_blockdev("qsd", {"driver": "qcow2", "node-name": "spare",
                               "file": "spare-file"})]


HEADER_CHAIN = CorpusGraph("header-chain", "qsd", _header_images, _header_args)


# -- json: file names --------------------------------------------------------------------
def _json_images(d: Path) -> None:
    create(d / "base.qcow2", MiB)
    create(d / "cut.qcow2", MiB, backing="base.qcow2")
    create(d / "ref.qcow2", MiB, backing="base.qcow2")
    create(d / "disk.img", 2 * MiB, fmt="raw")


def _json_args(d: Path) -> list[str]:
    bd = _blockdev
    return [*bd("qsd", {"driver": "qcow2", "node-name": "base", "file": _file(d / "base.qcow2")}),
            # backing cut off while the header names one: json:{"backing": null, ...}
            *bd("qsd", {"driver": "qcow2", "node-name": "cut", "backing": None,
                        "file": _file(d / "cut.qcow2")}),
            # backing by reference, header relative: json:
            *bd("qsd", {"driver": "qcow2", "node-name": "ref", "backing": "base",
                        "file": _file(d / "ref.qcow2")}),
            # a raw window into a disk: json:{"offset": ...}
            *bd("qsd", _file(d / "disk.img", "disk-file")),
            *bd("qsd", {"driver": "raw", "node-name": "part", "offset": MiB, "size": MiB,
                        "file": "disk-file"}),
            *bd("qsd", {"driver": "null-co", "node-name": "nul", "size": MiB})]


JSON_NAMES = CorpusGraph("json-names", "qsd", _json_images, _json_args)


# -- one base, several overlays, an export -----------------------------------------------
def _shared_images(d: Path) -> None:
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 0x33 0 128k")
    for name in ("vm1", "vm2", "vm3"):
        create(d / f"{name}.qcow2", MiB, backing=str(d / "base.qcow2"))


def _shared_args(d: Path) -> list[str]:
    out = [*_blockdev("qsd", _file(d / "base.qcow2", "base-file", **{"read-only": True})),
           *_blockdev("qsd", {"driver": "qcow2", "node-name": "base", "read-only": True,
                              "file": "base-file"})]
    for name in ("vm1", "vm2", "vm3"):
        out += _blockdev("qsd", _file(d / f"{name}.qcow2", f"{name}-file"))
        out += _blockdev("qsd", {"driver": "qcow2", "node-name": name, "backing": "base",
                                 "file": f"{name}-file"})
    out += ["--nbd-server", f"addr.type=unix,addr.path={d}/nbd.sock",
            "--export", "type=nbd,id=exp1,node-name=vm1,writable=on"]
    return out


SHARED_BASE = CorpusGraph("shared-base", "qsd", _shared_images, _shared_args)


# -- a disk behind a throttle filter and its group, as libvirt's <throttlefilters> -------
def _throttle_images(d: Path) -> None:
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 0x44 0 128k")
    create(d / "disk.qcow2", MiB, backing=str(d / "base.qcow2"))
    qemu_io(d / "disk.qcow2", "write -P 0x45 512k 64k")


def _throttle_args(d: Path) -> list[str]:
    return ["--object", "throttle-group,id=tg0,x-iops-total=1000,x-bps-total=10485760",
            *_blockdev("qsd", _file(d / "base.qcow2", "base-file")),
            *_blockdev("qsd", {"driver": "qcow2", "node-name": "base", "file": "base-file"}),
            *_blockdev("qsd", _file(d / "disk.qcow2", "disk-file")),
            *_blockdev("qsd", {"driver": "qcow2", "node-name": "disk", "backing": "base",
                               "file": "disk-file"}),
            *_blockdev("qsd", {"driver": "throttle", "node-name": "disk-throttle",
                               "throttle-group": "tg0", "file": "disk"}),
            "--nbd-server", f"addr.type=unix,addr.path={d}/nbd.sock",
            "--export", "type=nbd,id=guest,node-name=disk-throttle,writable=on"]


THROTTLED = CorpusGraph("throttled", "qsd", _throttle_images, _throttle_args)


# -- a running and a paused job ----------------------------------------------------------
def _job_images(d: Path) -> None:
    # a gibibyte of zero clusters to copy at one byte per second: every reopen that
    # drains the job lets it copy one more chunk, and it must outlast them all
    for chain in ("s", "c"):
        create(d / f"{chain}-base.qcow2", GiB)
        qemu_io(d / f"{chain}-base.qcow2", "write -P 0x44 0 64k")
        create(d / f"{chain}-mid.qcow2", GiB, backing=str(d / f"{chain}-base.qcow2"))
        qemu_io(d / f"{chain}-mid.qcow2", "write -z 0 1G")
        create(d / f"{chain}-top.qcow2", GiB, backing=str(d / f"{chain}-mid.qcow2"))


def _job_args(d: Path) -> list[str]:
    out: list[str] = []
    for chain in ("s", "c"):
        out += _blockdev("qsd", {"driver": "qcow2", "node-name": f"{chain}-base",
                                 "file": _file(d / f"{chain}-base.qcow2")})
        out += _blockdev("qsd", {"driver": "qcow2", "node-name": f"{chain}-mid",
                                 "backing": f"{chain}-base",
                                 "file": _file(d / f"{chain}-mid.qcow2")})
        out += _blockdev("qsd", {"driver": "qcow2", "node-name": f"{chain}-top",
                                 "backing": f"{chain}-mid",
                                 "file": _file(d / f"{chain}-top.qcow2")})
    return out


JOBS = CorpusGraph(
    "jobs", "qsd", _job_images, _job_args,
    setup=(("block-stream", {"job-id": "job-s", "device": "s-top", "base-node": "s-base",
                             "speed": 1}),
           ("block-commit", {"job-id": "job-c", "device": "c-top", "top-node": "c-mid",
                             "base-node": "c-base", "speed": 1}),
           ("job-pause", {"id": "job-c"})),
    settle={"job-s": "running", "job-c": "paused"})


# -- a VM: qemu-system-x86_64 -M q35 with libvirt-style drives ---------------------------
def _vm_images(d: Path) -> None:
    create(d / "base.qcow2", MiB)
    qemu_io(d / "base.qcow2", "write -P 0x66 0 128k")
    create(d / "disk0.qcow2", MiB, backing=str(d / "base.qcow2"))
    create(d / "disk1.qcow2", MiB, backing=str(d / "base.qcow2"))
    for iso in ("cd.iso", "other.iso", "spare.iso"):
        create(d / iso, MiB, fmt="raw")


def _vm_args(d: Path) -> list[str]:
    bd = _blockdev
    out = ["-object", json.dumps({"qom-type": "throttle-group", "id": "throttle-grp0",
                                  "limits": {"bps-total": 100 * MiB}})]
    # libvirt's node names and options: a storage and a format node per layer, the
    # chain given by reference, the base shared by both disks
    out += bd("qemu-system", {"driver": "file", "filename": str(d / "base.qcow2"),
                              "node-name": "libvirt-3-storage", "auto-read-only": True,
                              "discard": "unmap"})
    out += bd("qemu-system", {"node-name": "libvirt-3-format", "read-only": True,
                              "driver": "qcow2", "file": "libvirt-3-storage",
                              "backing": None})
    for n, disk in ((1, "disk0"), (2, "disk1")):
        out += bd("qemu-system", {"driver": "file", "filename": str(d / f"{disk}.qcow2"),
                                  "node-name": f"libvirt-{n}-storage",
                                  "auto-read-only": True, "discard": "unmap"})
        out += bd("qemu-system", {"node-name": f"libvirt-{n}-format", "read-only": False,
                                  "discard": "unmap", "driver": "qcow2",
                                  "file": f"libvirt-{n}-storage",
                                  "backing": "libvirt-3-format"})
    # disk0 through a throttle filter in a throttle group, as libvirt's <throttlefilters>
    out += bd("qemu-system", {"driver": "throttle", "node-name": "libvirt-4-filter",
                              "throttle-group": "throttle-grp0", "file": "libvirt-1-format"})
    out += ["-device", "virtio-blk-pci,bus=pcie.0,addr=0x4,drive=libvirt-4-filter,"
                       "id=virtio-disk0",
            "-device", "virtio-blk-pci,bus=pcie.0,addr=0x5,drive=libvirt-2-format,"
                       "id=virtio-disk1"]
    # a CD-ROM with a medium and an empty one, on q35's AHCI buses
    out += bd("qemu-system", {"driver": "file", "filename": str(d / "cd.iso"),
                              "node-name": "libvirt-5-storage", "read-only": True})
    out += bd("qemu-system", {"node-name": "libvirt-5-format", "read-only": True,
                              "driver": "raw", "file": "libvirt-5-storage"})
    out += bd("qemu-system", {"driver": "file", "filename": str(d / "other.iso"),
                              "node-name": "libvirt-6-storage", "read-only": True})
    out += bd("qemu-system", {"node-name": "libvirt-6-format", "read-only": True,
                              "driver": "raw", "file": "libvirt-6-storage"})
    out += ["-device", "ide-cd,bus=ide.0,drive=libvirt-5-format,id=sata0-0-0",
            "-device", "ide-cd,bus=ide.1,id=sata0-0-1",
            "-device", "ide-cd,bus=ide.2,drive=libvirt-6-format,id=sata0-0-2"]
    return out


# trays: sata0-0-0 closed with a medium, sata0-0-1 open and empty, sata0-0-2 open with one
VM = CorpusGraph("vm-q35", "qemu-system", _vm_images, _vm_args,
                 setup=(("blockdev-open-tray", {"id": "sata0-0-1"}),
                        ("blockdev-open-tray", {"id": "sata0-0-2"})),
                 media=("spare.iso", "cd.iso", "disk0.qcow2", "base.qcow2"))

CORPUS = (HEADER_CHAIN, JSON_NAMES, SHARED_BASE, THROTTLED, JOBS, VM)

"""Offline chain edits (engine/offline) against qemu-img doing the same.

A three-layer chain with a 256 MiB virtual disk: base holds 96 MiB of data, mid 48 MiB
(half of it over base's data), top 32 MiB. Each figure is the best of three runs on a
fresh copy of the chain (copying is not timed), in seconds, beside the qemu-img command
that does the same edit:

- safe rebase of top onto base (mid's 48 MiB must be copied into top) vs
  ``qemu-img rebase -b base.qcow2``;
- flatten to a new qcow2 vs ``qemu-img convert -O qcow2``;
- commit top into mid vs ``qemu-img commit``.

The qemu-img figures include starting the process (a few ms). Target: within 2x of
qemu-img; slower than 4x is a bug.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.formats import create_qcow2, open_image
from engine.offline import commit, flatten, rebase
from tests.bench.report import Report, timed
from tests.support.qemu import qemu_img

MIB = 1 << 20
SIZE = 256 * MIB
BENCH = "offline"
TARGET = ">= 0.5x (< 0.25x is a bug)"


def _build(d: Path) -> None:
    d.mkdir()
    create_qcow2(d / "base.qcow2", SIZE)
    create_qcow2(d / "mid.qcow2", SIZE, backing_file="base.qcow2")
    create_qcow2(d / "top.qcow2", SIZE, backing_file="mid.qcow2")
    for name, start, length, pattern in (("base", 0, 96, 0x11), ("mid", 72, 48, 0x22),
                                         ("top", 160, 32, 0x33)):
        with open_image(d / f"{name}.qcow2", writable=True) as img:
            chunk = bytes([pattern]) * MIB
            for off in range(start, start + length):
                img.write(off * MIB, chunk)


def _best(tmp: Path, pristine: Path, fn: Callable[[Path], object], n: int = 3) -> float:
    best = float("inf")
    for i in range(n):
        work = tmp / f"run{i}-{fn.__name__}"
        shutil.copytree(pristine, work)
        seconds, _ = timed(lambda w=work: fn(w))
        best = min(best, seconds)
        shutil.rmtree(work)
    return best


def run(report: Report) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bg-bench-offline-"))
    try:
        pristine = tmp / "pristine"
        _build(pristine)
        pairs = [
            ("safe rebase top onto base (48 MiB to copy)",
             lambda d: rebase(d / "top.qcow2", "base.qcow2", "qcow2"),
             lambda d: qemu_img("rebase", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
                                d / "top.qcow2"), "qemu-img rebase"),
            ("flatten the chain to a new qcow2",
             lambda d: flatten(d / "top.qcow2", d / "flat.qcow2"),
             lambda d: qemu_img("convert", "-f", "qcow2", "-O", "qcow2", d / "top.qcow2",
                                d / "flat.qcow2"), "qemu-img convert"),
            ("commit top into mid",
             lambda d: commit(d / "top.qcow2"),
             lambda d: qemu_img("commit", "-q", "-f", "qcow2", d / "top.qcow2"),
             "qemu-img commit"),
        ]
        for what, ours, theirs, anchor_name in pairs:
            ours.__name__ = "ours"      # type: ignore[attr-defined]
            theirs.__name__ = "qemu"    # type: ignore[attr-defined]
            t_ours = _best(tmp, pristine, ours)
            t_qemu = _best(tmp, pristine, theirs)
            report.add(BENCH, what, t_ours, "s", anchor=t_qemu, anchor_name=anchor_name,
                       target=TARGET)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

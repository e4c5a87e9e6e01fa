"""Offline chain edits (engine/offline) against qemu-img doing the same.

A three-layer chain with a 256 MiB virtual disk: base holds 96 MiB of data, mid 48 MiB
(half of it over base's data), top 32 MiB. Each run works on a fresh copy of the chain
(copied and written back to the disk before the clock starts), ours and qemu-img's in
turns, in seconds:

- safe rebase of top onto base (mid's 48 MiB must be copied into top) vs
  ``qemu-img rebase -b base.qcow2``;
- flatten to a new qcow2 vs ``qemu-img convert -O qcow2 -t writeback``;
- commit top into mid vs ``qemu-img commit``.

Both sides promise the same durability: each edit is on the disk when it returns.
Ours flushes before it reports success (and before a flattened image takes its
name); qemu-img rebase and commit flush when they close the image (their default
cache mode, ``writeback``), and so does convert given ``-t writeback``. Its default,
``-t unsafe``, never flushes: the informative row sets our flushed flatten beside
that. The qemu-img figures include starting the process (a few ms). Target: at least
qemu-img's speed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.formats import create_qcow2, open_image
from engine.offline import commit, flatten, rebase
from tests.bench.report import Report, alternate, timed
from tests.support.qemu import qemu_img

MIB = 1 << 20
SIZE = 256 * MIB
BENCH = "offline"
TARGET = ">= 1x"


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


def _on_copy(tmp: Path, pristine: Path, fn: Callable[[Path], object]) -> Callable[[], float]:
    """A run: ``fn`` timed on a fresh copy of the chain, none of its pages dirty."""
    def run() -> float:
        work = tmp / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        os.sync()    # the copy's writeback would otherwise land in whichever run flushes
        seconds, _ = timed(lambda: fn(work))
        shutil.rmtree(work)
        return seconds
    return run


def _convert(*cache: str) -> Callable[[Path], object]:
    return lambda d: qemu_img("convert", "-f", "qcow2", "-O", "qcow2", *cache,
                              d / "top.qcow2", d / "flat.qcow2")


def run(report: Report) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bg-bench-offline-"))
    try:
        pristine = tmp / "pristine"
        _build(pristine)
        rows = [
            ("safe rebase top onto base (48 MiB to copy)",
             lambda d: rebase(d / "top.qcow2", "base.qcow2", "qcow2"),
             lambda d: qemu_img("rebase", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
                                d / "top.qcow2"), "qemu-img rebase", False),
            ("flatten the chain to a new qcow2 (both flushed)",
             lambda d: flatten(d / "top.qcow2", d / "flat.qcow2"),
             _convert("-t", "writeback"), "qemu-img convert -t writeback", False),
            ("flatten, flushed, beside convert's default -t unsafe (never flushed)",
             lambda d: flatten(d / "top.qcow2", d / "flat.qcow2"),
             _convert(), "qemu-img convert", True),
            ("commit top into mid",
             lambda d: commit(d / "top.qcow2"),
             lambda d: qemu_img("commit", "-q", "-f", "qcow2", d / "top.qcow2"),
             "qemu-img commit", False),
        ]
        for what, ours, theirs, anchor_name, informative in rows:
            t_ours, t_qemu = alternate(_on_copy(tmp, pristine, ours),
                                       _on_copy(tmp, pristine, theirs))
            report.add(BENCH, what, t_ours, "s", anchor=t_qemu, anchor_name=anchor_name,
                       target=TARGET, informative=informative)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

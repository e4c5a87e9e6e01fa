"""The programs iotests is pointed at: real QEMU through a wrapper, and blockgraph.

Debian's ``qemu-system-x86_64`` is built without the qtest accelerator that iotests
asks for (``-accel qtest``). The wrapper maps it to ``tcg`` and gives the guest a
firmware of HLT instructions only (64 KiB of 0xF4), so that no guest code runs and
touches the devices under test. ``blockgraph qemu`` is started through a small script
because iotests wants one executable path in ``QEMU_PROG``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

QEMU_SYSTEM = "/usr/bin/qemu-system-x86_64"
QEMU_IMG = "/usr/bin/qemu-img"
QEMU_IO = "/usr/bin/qemu-io"
QEMU_NBD = "/usr/bin/qemu-nbd"
QSD = "/usr/bin/qemu-storage-daemon"
HLT_FIRMWARE_SIZE = 64 * 1024
HLT = b"\xf4"

_QEMU_WRAPPER = """#!/bin/bash
# qemu-system-x86_64 for iotests: the qtest accelerator becomes tcg, the firmware HLTs.
args=()
prev=
for arg in "$@"; do
  if [ "$prev" = "-accel" ] && [ "$arg" = "qtest" ]; then arg=tcg; fi
  if [ "$prev" = "-machine" ]; then arg="${{arg//accel=qtest/accel=tcg}}"; fi
  args+=("$arg")
  prev="$arg"
done
exec {qemu} -bios {bios} "${{args[@]}}"
"""

_BLOCKGRAPH_LAUNCHER = """#!/bin/sh
# blockgraph's QEMU-compatible launcher, as one executable for QEMU_PROG.
PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m gui.cli qemu "$@"
"""


def write_qemu_wrapper(directory: Path) -> Path:
    """Write the real-QEMU wrapper and its HLT firmware into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    bios = directory / "hlt-firmware.bin"
    bios.write_bytes(HLT * HLT_FIRMWARE_SIZE)
    wrapper = directory / "qemu-system-x86_64"
    wrapper.write_text(_QEMU_WRAPPER.format(qemu=shlex.quote(QEMU_SYSTEM),
                                            bios=shlex.quote(str(bios))), encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


def write_blockgraph_launcher(directory: Path, project_root: Path) -> Path:
    """Write the script that runs ``blockgraph qemu`` with this Python and project."""
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / "blockgraph-qemu"
    launcher.write_text(_BLOCKGRAPH_LAUNCHER.format(
        python=shlex.quote(sys.executable), root=shlex.quote(str(project_root))),
        encoding="utf-8")
    launcher.chmod(0o755)
    return launcher

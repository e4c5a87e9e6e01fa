"""``blockgraph qemu`` refuses bad command lines with qemu-system-x86_64 7.2's own words,
and answers iotests' help queries with only what the engine implements."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.launcher.cli import supported_drivers

pytestmark = pytest.mark.qemu

BASE = ["-M", "none", "-nodefaults", "-display", "none"]

REFUSED = [
    ["-foo"],
    ["-drive", "bogus=1"],
    ["-blockdev", "driver=foo"],
    ["-blockdev", "driver=null-co"],
    ["-drive", "if=virtio,file=/nonexistent/disk.img"],
    ["-drive", "file=/etc/hostname,format=raw,if=none,id=a",
     "-drive", "file=/etc/hostname,format=raw,if=none,id=a"],
    ["-drive", "file=/etc/hostname,format=raw,if=none,cache=bogus"],
]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)


def _errors(text: str) -> list[str]:
    # Debian's QEMU may also complain about its optional display modules
    return [line for line in text.splitlines() if not line.startswith("qemu: module ")]


@pytest.mark.parametrize("options", REFUSED, ids=lambda o: " ".join(o)[:40])
def test_refusals_match_qemu(options: list[str]) -> None:
    qemu = _run(["qemu-system-x86_64", *BASE, *options])
    ours = _run([sys.executable, "-m", "gui.cli", "qemu", *BASE, *options])
    assert qemu.returncode == 1
    assert (ours.returncode, _errors(ours.stderr)) == (1, _errors(qemu.stderr))


def test_format_help_lists_only_the_engines_drivers() -> None:
    out = _run([sys.executable, "-m", "gui.cli", "qemu", "-drive", "format=help"]).stdout
    lines = out.splitlines()
    assert lines[0].split(":")[1].split() == supported_drivers()
    assert lines[1].startswith("Supported formats (read-only):")


def test_unmodelled_options_are_refused_not_ignored() -> None:
    ours = _run([sys.executable, "-m", "gui.cli", "qemu", *BASE, "-netdev", "user,id=n0"])
    assert ours.returncode == 1
    assert ours.stderr.strip() == ("qemu-system-x86_64: -netdev user,id=n0: not modelled "
                                   "by the bundled engine")

"""``blockgraph --list``: libvirt URIs with their domains, and the QMP monitors of the
QEMU processes running here, each with whether it can be opened now."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gui.discovery.sockets import monitors_in_cmdline, probe
from tests.libvirt.conftest import Domain
from tests.support.qemu import QSD, QemuStorageDaemon

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("argv", "expected"), [
    (["qemu-storage-daemon", "--chardev", "socket,path=/r/q.sock,server=on,wait=off,id=c0",
      "--monitor", "chardev=c0"], ["unix:/r/q.sock"]),
    (["/usr/bin/qemu-system-x86_64", "-qmp", "unix:/r/vm.qmp,server,nowait"], ["unix:/r/vm.qmp"]),
    (["qemu-system-x86_64", "-qmp", "tcp:127.0.0.1:4444,server=on,wait=off"],
     ["tcp:127.0.0.1:4444"]),
    (["qemu-system-x86_64", "-chardev", "socket,id=m,path=/r/m.sock,server=on,wait=off",
      "-mon", "chardev=m,mode=control"], ["unix:/r/m.sock"]),
    # an HMP monitor, and libvirt's monitor passed as a descriptor: nothing to open
    (["qemu-system-x86_64", "-chardev", "socket,id=h,path=/r/h.sock,server=on",
      "-mon", "chardev=h,mode=readline"], []),
    (["qemu-system-x86_64", "-chardev", "socket,id=charmonitor,fd=29,server=on,wait=off",
      "-mon", "chardev=charmonitor,id=monitor,mode=control"], []),
])
def test_monitors_are_read_off_command_lines(argv: list[str], expected: list[str]) -> None:
    assert monitors_in_cmdline(argv) == expected


def blockgraph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gui.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_list_shows_domains_and_monitors_free_or_busy(domain: Domain, tmp_path: Path) -> None:
    busy = QemuStorageDaemon(tmp_path / "busy")
    (tmp_path / "busy").mkdir()
    proxmox = tmp_path / "qemu-server"
    proxmox.mkdir()
    free_sock = proxmox / "101.qmp"
    free = subprocess.Popen([QSD, "--chardev", f"socket,path={free_sock},server=on,wait=off,"
                             "id=m0", "--monitor", "chardev=m0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with busy:
            deadline = time.monotonic() + 30
            while probe(f"unix:{free_sock}").state != "free":
                assert free.poll() is None and time.monotonic() < deadline, \
                    "qemu-storage-daemon did not come up"
            assert busy.proc is not None
            busy_pid = busy.proc.pid
            proc = blockgraph("--list", "--connect", domain.uri, "--dir", str(proxmox))
    finally:
        free.terminate()
        free.wait(30)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in proc.stdout.splitlines()}
    assert lines[domain.uri].startswith("libvirt, ")
    assert lines[f"{domain.uri}#{domain.name}"] == f"domain {domain.name}: running"
    assert lines[f"unix:{busy.socket_path}"] == (
        f"qemu-storage-daemon (pid {busy_pid}): busy, another client holds the monitor")
    assert lines[f"unix:{free_sock}"].startswith(
        f"QMP socket in {proxmox}, qemu-storage-daemon (pid {free.pid}): free, QEMU 7.2")


def test_a_libvirt_uri_that_cannot_be_opened_says_why() -> None:
    proc = blockgraph("--list", "--connect", "qemu:///system?socket=/nonexistent/sock")
    assert proc.returncode == 0
    line = next(x for x in proc.stdout.splitlines() if x.startswith("qemu:///system?socket"))
    assert "libvirt: Failed to connect socket to '/nonexistent/sock'" in line

"""QMP monitors on this host: where they are and whether one can be opened now.

Two sources: the usual places (Proxmox VE keeps one monitor per VM at
``/var/run/qemu-server/VMID.qmp``), and the command lines of running QEMU processes
(``/proc/PID/cmdline``): ``-qmp unix:PATH,server=on``, ``-qmp tcp:HOST:PORT,server=on``,
and ``-chardev socket,id=ID,path=PATH,server=on`` used by ``-mon chardev=ID,mode=control``
(``--chardev``/``--monitor`` for qemu-storage-daemon, where every monitor speaks QMP).
A monitor passed as a file descriptor (libvirt's) has no path anyone else could open.

A QMP monitor serves one client at a time; :func:`probe` connects, waits a bounded time
for the greeting and closes again — a monitor whose greeting does not come is busy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PROXMOX_DIRS = (Path("/var/run/qemu-server"), Path("/run/qemu-server"))
_QEMU = re.compile(r"^(qemu-system-[\w-]+|qemu-storage-daemon|qemu-kvm|kvm)$")


@dataclass(frozen=True, slots=True)
class Monitor:
    """A QMP monitor found on this host: ``address`` as ``--connect`` takes it."""

    address: str
    owner: str          # "qemu-storage-daemon (pid 42)", "Proxmox VM 101", ...
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    state: str          # free | busy | refused | denied | gone
    detail: str = ""


def _options(text: str) -> tuple[str, dict[str, str]]:
    """``socket,id=c0,path=/x`` -> ("socket", {"id": "c0", "path": "/x"}); bare flags -> "on"."""
    parts = text.split(",")
    head, opts = parts[0], {}
    for p in parts[1:]:
        key, sep, value = p.partition("=")
        opts[key] = value if sep else "on"
    if "=" in head:
        key, _, value = head.partition("=")
        opts[key] = value
        head = ""
    return head, opts


def _server(opts: dict[str, str]) -> bool:
    return opts.get("server", "off") in ("on", "yes", "true")


def monitors_in_cmdline(argv: Sequence[str]) -> list[str]:
    """Addresses of the QMP monitors one QEMU command line serves (unix:PATH / tcp:H:P)."""
    program = os.path.basename(argv[0]) if argv else ""
    storage_daemon = program == "qemu-storage-daemon"
    chardevs: dict[str, dict[str, str]] = {}
    monitors: list[str] = []
    qmp_ids: list[str] = []
    args = list(argv[1:])
    for i, arg in enumerate(args):
        value = args[i + 1] if i + 1 < len(args) else ""
        flag = arg.lstrip("-")
        if flag == "chardev":
            backend, opts = _options(value)
            if backend == "socket" and _server(opts) and "id" in opts:
                chardevs[opts["id"]] = opts
        elif flag == "mon" or (flag == "monitor" and storage_daemon):
            _, opts = _options(value)
            if opts.get("mode", "control" if storage_daemon else "readline") == "control":
                qmp_ids.append(opts.get("chardev", ""))
        elif flag == "qmp":
            kind, _, rest = value.partition(":")
            target, _, tail = rest.partition(",")
            _, opts = _options("x," + tail)
            if kind == "unix" and target and _server({"server": "on", **opts}):
                monitors.append(f"unix:{target}")
            elif kind == "tcp" and target:
                monitors.append(f"tcp:{target}")
    for chardev_id in qmp_ids:
        chardev = chardevs.get(chardev_id)
        if chardev is None:
            continue
        if "path" in chardev:
            monitors.append(f"unix:{chardev['path']}")
        elif "port" in chardev and "fd" not in chardev:
            monitors.append(f"tcp:{chardev.get('host', 'localhost')}:{chardev['port']}")
    return monitors


def _processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "cmdline").read_bytes()
            argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
            if argv and _QEMU.match(os.path.basename(argv[0])):
                yield int(entry.name), argv


def _guest_name(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg.lstrip("-") == "name":
            head, opts = _options(argv[i + 1])
            return opts.get("guest") or head
    return ""


def find_monitors(extra_dirs: Iterable[Path] = ()) -> list[Monitor]:
    """Every QMP monitor found: the usual places, then the process list (no duplicates)."""
    found: dict[str, Monitor] = {}
    for directory in (*PROXMOX_DIRS, *extra_dirs):
        with contextlib.suppress(OSError):
            for path in sorted(directory.glob("*.qmp")):
                owner = (f"Proxmox VM {path.stem}" if directory in PROXMOX_DIRS
                         else f"QMP socket in {directory}")
                found.setdefault(f"unix:{path}", Monitor(f"unix:{path}", owner))
    for pid, argv in _processes():
        program = os.path.basename(argv[0])
        name = _guest_name(argv)
        owner = f"{program} '{name}' (pid {pid})" if name else f"{program} (pid {pid})"
        for address in monitors_in_cmdline(argv):
            previous = found.get(address)
            if previous is None or previous.pid is None:
                label = f"{previous.owner}, {owner}" if previous else owner
                found[address] = Monitor(address, label, pid)
    return list(found.values())


def probe(address: str, timeout: float = 1.0) -> Probe:
    """Open the monitor, wait at most ``timeout`` for QMP's greeting, close it again."""
    kind, _, target = address.partition(":")
    try:
        if kind == "unix":
            if not os.access(target, os.R_OK | os.W_OK):
                return Probe("denied", "no permission to open the socket") \
                    if os.path.exists(target) else Probe("gone", "the socket is gone")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(target)
        else:
            host, _, port = target.rpartition(":")
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as exc:
        return Probe("refused", exc.strerror or str(exc))
    deadline = time.monotonic() + timeout
    data = b""
    with sock:
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Probe("busy", "another client holds the monitor")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                return Probe("busy", "another client holds the monitor")
            except OSError as exc:
                return Probe("refused", exc.strerror or str(exc))
            if not chunk:
                return Probe("busy", "the monitor closed the connection")
            data += chunk
    try:
        qemu = json.loads(data.split(b"\n", 1)[0])["QMP"]["version"]["qemu"]
    except (ValueError, KeyError, TypeError):
        return Probe("refused", "not a QMP monitor")
    return Probe("free", f"QEMU {qemu['major']}.{qemu['minor']}.{qemu['micro']}")


def probe_all(addresses: Sequence[str], timeout: float = 1.0) -> list[Probe]:
    """Probe several monitors at once (a busy one costs ``timeout``, not each in turn)."""
    if not addresses:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(addresses))) as pool:
        return list(pool.map(lambda a: probe(a, timeout), addresses))

"""One QEMU process of the corpus — qemu-storage-daemon or qemu-system-x86_64 — and a
blocking QMP client on its monitor.

Started from a copy of the graph's pristine images, so a process can be thrown away
after any edit and the same graph started again (a start takes tens of milliseconds).
The client keeps every event it reads, so a wait for a job status seen before the wait
began still sees it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from tests.support.qemu import QSD, connect_monitor, wait_until_initialized

QEMU_SYSTEM = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"


class QmpFailure(Exception):
    """A command answered with an error: ``desc`` is QEMU's text."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(desc)
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QemuProcess:
    """A started QEMU (``program`` "qsd" or "qemu-system") with ``args`` in ``workdir``."""

    def __init__(self, program: str, args: Sequence[str], workdir: Path) -> None:
        self.workdir = workdir
        self.socket_path = str(workdir / "qmp.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        pidfile = str(workdir / "qsd.pid")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pidfile)
        if program == "qsd":
            argv = [QSD, "--chardev",
                    f"socket,path={self.socket_path},server=on,wait=off,id=m0",
                    "--monitor", "chardev=m0", "--pidfile", pidfile, *args]
        else:
            argv = [QEMU_SYSTEM, "-M", "q35", "-nodefaults", "-S", "-display", "none",
                    "-qmp", f"unix:{self.socket_path},server=on,wait=off", *args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                self.proc.kill()
                raise RuntimeError(f"{program} did not start: {out}")
            time.sleep(0.005)
        if program == "qsd":
            wait_until_initialized(pidfile, self.proc, deadline)
        sock: socket.socket = connect_monitor(self.socket_path, self.proc, deadline)
        self.qmp = QEMUMonitorProtocol(sock)
        self.qmp.connect(negotiate=True)
        self.events: list[dict[str, Any]] = []

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """The command's return value; raises :class:`QmpFailure` with QEMU's text."""
        reply = self.qmp.cmd_raw(command, dict(arguments) if arguments is not None else None)
        self._drain()
        if "error" in reply:
            raise QmpFailure(command, reply["error"]["class"], reply["error"]["desc"])
        return reply["return"]

    def _drain(self) -> None:
        while (event := self.qmp.pull_event(wait=False)) is not None:
            self.events.append(event)

    def wait_event(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for one more event; False when none came."""
        try:
            event = self.qmp.pull_event(wait=timeout)
        except TimeoutError:
            return False
        if event is None:
            return False
        self.events.append(event)
        self._drain()
        return True

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

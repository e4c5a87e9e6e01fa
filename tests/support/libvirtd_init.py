"""The first process of a private libvirtd's namespaces (run by :mod:`tests.support.libvirtd`).

Started as ``unshare --mount --propagation private --pid --fork --mount-proc python
libvirtd_init.py BASE``, so it is PID 1 of a new PID namespace and alone in a new mount
namespace. It bind-mounts BASE's private directories over libvirt's fixed root paths,
starts ``virtlogd --daemon`` and ``libvirtd --daemon`` (which then start QEMU), prints
``ready`` (or ``error: ...``), and reaps every process of the namespace that exits — a
PID 1 must, or they stay zombies. When its standard input closes (the tests are done,
or their process died) it returns; the kernel then ends every process left in the
namespace — daemons and QEMU alike — and the bind mounts vanish with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

#: private directory under BASE -> the path libvirt uses when it runs as root
MOUNTS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
)


def _reap(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(base: str) -> int:
    try:
        for private, path in MOUNTS:
            os.makedirs(path, exist_ok=True)
            subprocess.run(["mount", "--bind", os.path.join(base, private), path],
                           check=True, capture_output=True, text=True)
        for daemon in ("virtlogd", "libvirtd"):
            subprocess.run([daemon, "--daemon", "--pid-file", f"/run/libvirt/{daemon}.pid"],
                           check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        print(f"error: {' '.join(exc.cmd)} exited {exc.returncode}"
              + (f": {detail[-1]}" if detail else ""), flush=True)
        return 1
    # only now: a handler reaping during subprocess.run would steal its exit status
    signal.signal(signal.SIGCHLD, _reap)
    _reap()
    print("ready", flush=True)
    sys.stdin.buffer.read()          # until the tests close it (or die)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

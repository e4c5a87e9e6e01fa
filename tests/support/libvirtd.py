"""A private libvirtd for tests: ``virtlogd --daemon`` and ``libvirtd --daemon`` as root,
each test run with its own sockets, configuration, state and logs.

libvirtd running as root uses fixed paths (``/run/libvirt``, ``/etc/libvirt``,
``/var/lib/libvirt``…); a system libvirtd, or another test run on the same host,
owns them. So the daemons start inside new mount and PID namespaces
(``unshare``), where :mod:`tests.support.libvirtd_init` bind-mounts directories of
this run over those paths. Clients outside reach the daemon through its socket:
``qemu:///system?socket=BASE/run/libvirt-sock`` (also for ``virsh -c``).

Cleaning up cannot be forgotten: the namespace's first process is a child of the
tests; when :meth:`LibvirtDaemon.stop` closes its input — or the test process dies —
it exits and the kernel ends every daemon and QEMU of the namespace.

QEMU's capabilities, which libvirtd probes on its first start (seconds of QEMU
start-ups), are kept between runs in the user's cache directory, as libvirt itself
keeps them in ``/var/cache/libvirt``; libvirt checks them against the QEMU binary
and its own version before it trusts them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

INIT = Path(__file__).with_name("libvirtd_init.py")
BINARIES = {
    "libvirtd": "libvirt-daemon",
    "virtlogd": "libvirt-daemon-system",
    "virsh": "libvirt-clients",
    "qemu-system-x86_64": "qemu-system-x86",
    "unshare": "util-linux",
}
QEMU_DRIVER = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/"
                   "libvirt_driver_qemu.so")

LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
# root runs QEMU (the test images live in root's 0700 temporary directories); no
# security driver, per-domain namespaces or cgroups: none of them is what is tested
# and a container may lack them
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
"""
VIRTLOGD_CONF = 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n'



def propagation() -> str:
    """How the new mount namespace treats the mounts it copies.

    ``private`` cuts every tie with the host's mounts, so the bind mounts made inside
    never show outside. It needs ``/`` to be a mount point, which it is not in a plain
    chroot (a freshly bootstrapped Debian, say). There ``unchanged`` is just as safe
    when no mount of the machine is shared (``shared:`` in PID 1's mountinfo, which
    sees the whole machine): a mount made inside then has no peer to propagate to.
    """
    try:
        with open("/proc/self/mountinfo") as mounts:   # os.path.ismount("/") is always True
            root_is_a_mount = any(line.split()[4] == "/" for line in mounts)
        with open("/proc/1/mountinfo") as mounts:
            shared = any("shared:" in line.split(" - ")[0] for line in mounts)
    except OSError:
        return "private"
    return "private" if root_is_a_mount or shared else "unchanged"

class LibvirtUnavailable(Exception):
    """This machine cannot run the private libvirtd; ``str()`` says why, in one line."""


def unavailable_reason() -> str | None:
    """Why libvirt tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return (f"libvirtd is started as root for qemu:///system; the tests run as uid "
                f"{os.geteuid()}")
    for binary, package in BINARIES.items():
        if shutil.which(binary) is None:
            return f"{binary} is not installed (Debian package {package})"
    if not QEMU_DRIVER.exists():
        return "libvirt's QEMU driver is not installed (Debian package libvirt-daemon-driver-qemu)"
    if importlib.util.find_spec("libvirt") is None:
        return "the libvirt Python binding is not installed (pip install libvirt-python)"
    return None


def capabilities_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "blockgraph" / "libvirt-qemu-capabilities"


class LibvirtDaemon:
    """virtlogd + libvirtd in private namespaces; ``uri`` reaches them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._init: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.base / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    @property
    def log(self) -> Path:
        return self.base / "log" / "libvirtd.log"

    def _prepare(self) -> None:
        for sub in ("etc/qemu", "run", "lib/qemu", "log/qemu", "cache/qemu/capabilities"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        (self.base / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (self.base / "etc" / "virtlogd.conf").write_text(VIRTLOGD_CONF)
        cached = capabilities_cache()
        if cached.is_dir():
            for xml in cached.glob("*.xml"):
                shutil.copy2(xml, self.base / "cache" / "qemu" / "capabilities" / xml.name)

    def start(self, timeout: float = 120.0) -> None:
        """Start the daemons; raises LibvirtUnavailable (one line) when they cannot run."""
        reason = unavailable_reason()
        if reason:
            raise LibvirtUnavailable(reason)
        self._prepare()
        self._init = subprocess.Popen(
            ["unshare", "--mount", "--propagation", propagation(), "--pid", "--fork",
             "--mount-proc", sys.executable, str(INIT), str(self.base)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        assert self._init.stdout is not None
        line = self._read_line(self._init.stdout, deadline)
        if line != "ready":
            if not line and self._init.poll() is not None and self._init.stderr is not None:
                # unshare itself failed (no namespaces in this container, say)
                lines = self._init.stderr.read().decode(errors="replace").strip().splitlines()
                line = lines[-1] if lines else f"unshare exited {self._init.returncode}"
            self.stop()
            raise LibvirtUnavailable("cannot start libvirtd in private namespaces: "
                                     + (line.removeprefix("error: ") or "no reply"))
        # libvirtd answers once its drivers are up (the first start probes QEMU)
        proc = self.virsh("version", check=False, timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode != 0 or "QEMU" not in proc.stdout:
            self.stop()
            last = (proc.stderr.strip().splitlines() or ["no QEMU hypervisor"])[-1]
            raise LibvirtUnavailable(f"libvirtd has no working QEMU driver: {last}")

    @staticmethod
    def _read_line(pipe: object, deadline: float) -> str:
        fd = pipe.fileno()  # type: ignore[attr-defined]
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    def virsh(self, *args: str, check: bool = True,
              timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``virsh -c URI ARGS``; with ``check``, a failure raises with virsh's message."""
        proc = subprocess.run(["virsh", "-q", "-c", self.uri, *args], capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"virsh {' '.join(args)} exited {proc.returncode}: "
                                 f"{proc.stderr.strip()}")
        return proc

    def stop(self, timeout: float = 30.0) -> None:
        """End the namespace (daemons and QEMU with it), keep QEMU's capabilities."""
        init, self._init = self._init, None
        if init is None:
            return
        with contextlib.suppress(OSError):
            assert init.stdin is not None
            init.stdin.close()
        try:
            init.wait(timeout)
        except subprocess.TimeoutExpired:
            init.kill()
            init.wait()
        for pipe in (init.stdout, init.stderr):
            if pipe is not None:
                pipe.close()
        self._save_capabilities()

    def _save_capabilities(self) -> None:
        probed = self.base / "cache" / "qemu" / "capabilities"
        target = capabilities_cache()
        with contextlib.suppress(OSError):
            target.mkdir(parents=True, exist_ok=True)
            for xml in probed.glob("*.xml"):
                tmp = target / f".{xml.name}.{os.getpid()}"
                shutil.copy2(xml, tmp)
                os.replace(tmp, target / xml.name)

    def __enter__(self) -> LibvirtDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def domain_xml(name: str, disk: Path, cdrom: Path | None = None, *,
               disk_format: str = "qcow2", memory_mib: int = 64) -> str:
    """A TCG q35 domain without graphics: ``disk`` as virtio ``vda``, ``cdrom`` as ``sda``.

    q35 has no legacy IDE controller; its AHCI (libvirt's ``sata`` bus) is QEMU's IDE
    bus, so the CD-ROM is an ``ide-cd`` device there.
    """
    cd = ""
    if cdrom is not None:
        cd = f"""
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file={quoteattr(str(cdrom))}/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>"""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{shutil.which('qemu-system-x86_64') or '/usr/bin/qemu-system-x86_64'}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type={quoteattr(disk_format)}/>
      <source file={quoteattr(str(disk))}/>
      <target dev='vda' bus='virtio'/>
    </disk>{cd}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""

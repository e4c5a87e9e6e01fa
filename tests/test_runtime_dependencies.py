"""Everything the README's two commands run is installed by the bootstrap.

A development machine or CI already has most packages, which hides a missing install
step; on a minimal Debian (``../shared/tools/fresh-machine.sh``) these tests name what
``scripts/bootstrap.sh`` forgot: a command the scripts or the tests call, or a shared
library that Qt's window (xcb) and offscreen platforms load.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

#: Commands the scripts and the tests call: the virtual screen (xvfb-run needs xauth),
#: the real QEMU the engine is compared with, Graphviz as a benchmark anchor, and the
#: private libvirtd of the libvirt tests (tests/support/libvirtd.py).
COMMANDS = ("xvfb-run", "xauth", "Xvfb", "qemu-img", "qemu-io", "qemu-storage-daemon",
            "qemu-system-x86_64", "dot", "libvirtd", "virtlogd", "virsh", "unshare", "mount")

#: Qt plugins a window or an offscreen run loads: the platforms, the GL integrations of
#: the xcb platform, the image formats and the SVG icon engine (the window's icon).
QT_PLUGINS = ("platforms/libqxcb.so", "platforms/libqoffscreen.so",
              "xcbglintegrations/libqxcb-glx-integration.so",
              "xcbglintegrations/libqxcb-egl-integration.so",
              "imageformats/libqsvg.so", "iconengines/libqsvgicon.so")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_the_scripts_call_is_installed(command: str) -> None:
    assert shutil.which(command), f"'{command}' is not installed: add its Debian package " \
        "to scripts/bootstrap.sh"


def _plugins_dir() -> Path:
    import PySide6

    return Path(PySide6.__file__).parent / "Qt" / "plugins"


@pytest.mark.parametrize("plugin", QT_PLUGINS)
def test_qt_plugins_find_every_shared_library(plugin: str) -> None:
    path = _plugins_dir() / plugin
    assert path.exists(), f"PySide6 has no {plugin}"
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                         check=True).stdout
    missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
    assert not missing, f"{plugin} needs {', '.join(missing)}: add the Debian packages " \
        "that hold them to scripts/bootstrap.sh"


def test_qt_finds_fonts() -> None:
    """Without a font the window draws no text at all (Qt brings none of its own)."""
    out = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip(), "fontconfig finds no fonts: add fonts-dejavu-core to the bootstrap"


def test_libvirt_driver_and_binding_find_every_shared_library() -> None:
    """libvirtd loads its QEMU driver as a module, and the binding is built from source:
    both must find their libraries with Debian's recommends left out."""
    import libvirtmod

    driver = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so")
    for path in (driver, Path(libvirtmod.__file__)):
        assert path.exists(), f"{path} is missing"
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                             check=True).stdout
        missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
        assert not missing, f"{path.name} needs {', '.join(missing)}"

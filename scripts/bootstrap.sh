#!/usr/bin/env bash
# Set up everything blockgraph needs on a Debian machine, idempotently:
# system packages (QEMU tools, Qt runtime libraries, Xvfb, Graphviz) and a
# project venv in .venv with the Python packages. Sourced by scripts/run,
# scripts/test and scripts/bench so that each of them works on a fresh machine.
set -euo pipefail

BLOCKGRAPH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BLOCKGRAPH_ROOT
VENV="${BLOCKGRAPH_VENV:-$BLOCKGRAPH_ROOT/.venv}"

# Debian packages, installed without their recommends (so each one needed is named):
# the real QEMU the tests compare against; the Qt runtime (xcb for a real window,
# GL/EGL/fontconfig even for offscreen, and a font: Qt brings none); Xvfb and xauth
# (xvfb-run needs it) for a window without a display; Graphviz `dot` as a benchmark
# anchor; libvirtd, virtlogd, virsh and the QEMU driver for the libvirt tests, and
# libvirt-dev, pkg-config, gcc, libc6-dev and python3-dev to build the libvirt binding
# from PyPI (the venv's Python need not be Debian's, so Debian's python3-libvirt would
# not import there);
# libvirt-daemon-system-sysv picks the init-script flavour so that apt does not pull
# systemd in as the init system; dpkg-dev unpacks QEMU's source for scripts/iotests. tests/test_runtime_dependencies.py checks that
# nothing is missing.
APT_PACKAGES=(
  qemu-utils qemu-system-common qemu-system-x86 xvfb xauth graphviz python3-venv dpkg-dev
  libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon-driver-qemu
  libvirt-clients libvirt-dev pkg-config gcc libc6-dev python3-dev
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0
  libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxkbcommon-x11-0
  libgl1 libegl1 libglib2.0-0 libfontconfig1 fontconfig fonts-dejavu-core
  libxkbcommon0 libdbus-1-3
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "blockgraph: installing system packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "blockgraph: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "blockgraph: creating venv in $VENV" >&2
  "$PY" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last install.
stamp="$VENV/.blockgraph-installed"
want="$(sha256sum "$BLOCKGRAPH_ROOT/pyproject.toml" | cut -d' ' -f1) $BLOCKGRAPH_ROOT"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "blockgraph: installing Python packages into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$BLOCKGRAPH_ROOT[dev,libvirt]"
  echo "$want" >"$stamp"
fi
export PATH="$VENV/bin:$PATH"

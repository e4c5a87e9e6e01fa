"""The libvirt peer and discovery stay Qt-free, and the binding stays optional: the CLI
and the session load neither Qt nor libvirt until a libvirt connection is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_project import QT_MODULES, _imports

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["gui/libvirt", "gui/discovery"])
def test_never_imports_qt(package: str) -> None:
    offenders = [f"{p.relative_to(REPO)}: {name}" for p in sorted((REPO / package).rglob("*.py"))
                 for name in _imports(p)
                 if name.split(".")[0] in QT_MODULES
                 or name.startswith(("gui.views", "gui.widgets", "gui.window"))]
    assert offenders == []


def test_cli_session_and_offline_load_no_libvirt() -> None:
    code = ("import gui.cli, gui.session, gui.commands.render, gui.commands.offline, "
            "gui.commands.audit, "
            "engine.offline.audit, sys; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('libvirt', 'libvirtmod', 'libvirt_qemu', 'libvirtaio', 'PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

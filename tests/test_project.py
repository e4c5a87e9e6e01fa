"""Project-wide checks that run with the tests: layering, lint, the CLI entry."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "qasync", "shiboken6")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_never_imports_qt() -> None:
    """The engine is usable headless and by the planner: no Qt anywhere under engine/."""
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / "engine").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in QT_MODULES or name.split(".")[0] == "gui"
    ]
    assert offenders == []


def test_importing_gui_package_and_cli_loads_no_qt() -> None:
    code = "import gui, gui.cli, sys; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_cli_version_and_help() -> None:
    from gui import cli

    assert cli.main(["--version"]) == 0
    assert cli.main(["--help"]) == 0


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed (scripts/bootstrap.sh installs it)")
    proc = subprocess.run([ruff, "check", "--quiet", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("package", ["gui/session", "gui/planner", "gui/executor",
                                     "gui/scripting", "gui/images"])
def test_session_and_planner_never_import_qt(package: str) -> None:
    """Sessions (asyncio) and the planner (pure) run headless: no Qt, no qasync, no views."""
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in QT_MODULES
        or name.startswith(("gui.views", "gui.widgets", "gui.window"))
    ]
    assert offenders == []


def test_importing_session_and_planner_loads_no_qt() -> None:
    code = ("import gui.session, gui.planner, gui.executor, gui.scripting, gui.images, sys; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{QT_MODULES!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

"""The layers of ARCHITECTURE.md, checked: import contracts, no cycles, lazy imports listed.

The contracts themselves are in ``pyproject.toml`` (``[tool.importlinter]``); this file
runs ``lint-imports`` on them so that the suite, and so CI, fails on an upward import or
a cycle, with import-linter's account of which import breaks which contract.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest

REPO = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed (scripts/bootstrap.sh installs it)")
    return path


def test_import_contracts_hold() -> None:
    """Layers, "engine never imports gui or Qt", Qt-free packages, acyclic siblings."""
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, "import contracts broken:\n" + proc.stdout + proc.stderr


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No cycle of modules at all, through package ``__init__`` modules too (import-linter's
    ``acyclic_siblings`` compares siblings; a package and its own modules are not siblings)."""
    graph = grimp.build_graph("engine", "gui", exclude_type_checking_imports=True)
    imports = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            imports.add_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(imports) if len(c) > 1]
    assert cycles == [], f"modules that import each other: {cycles}"


def _imports_inside_functions() -> set[str]:
    found: set[str] = set()
    for path in sorted([*REPO.joinpath("engine").rglob("*.py"),
                        *REPO.joinpath("gui").rglob("*.py")]):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(func):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        found.add(str(path.relative_to(REPO)))
    return found


def test_every_import_inside_a_function_is_listed_with_its_reason() -> None:
    """ARCHITECTURE.md lists each file that imports inside a function, under its reason."""
    text = (REPO / "ARCHITECTURE.md").read_text()
    section = text.split("## Imports inside functions", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`((?:engine|gui)/[\w/]+\.py):\d", section))
    unlisted = _imports_inside_functions() - listed
    assert unlisted == set(), f"imports inside functions not in ARCHITECTURE.md: {unlisted}"


#: rooms of a size a person can hold: longer ones say why (ruff checks statements and
#: complexity; these check the lengths a reader sees)
MODULE_LINES, FUNCTION_LINES = 500, 60
_SAYS_WHY = re.compile(r"500 lines|60 lines|\blong|noqa: (?:C901|PLR0915)", re.IGNORECASE)


def _sources() -> list[Path]:
    return sorted(p for top in ("engine", "gui") for p in (REPO / top).rglob("*.py"))


def test_every_long_module_says_why_in_its_docstring() -> None:
    unexplained = []
    for path in _sources():
        text = path.read_text()
        if text.count("\n") > MODULE_LINES and not _SAYS_WHY.search(
                ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert unexplained == [], f"modules over {MODULE_LINES} lines without a reason: {unexplained}"


def test_every_long_function_says_why_in_a_comment() -> None:
    unexplained = []
    for path in _sources():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length <= FUNCTION_LINES:
                continue
            body = lines[node.lineno - 1:node.end_lineno]
            comments = [line for line in body if line.lstrip().startswith("#") or "# noqa" in line]
            if not any(_SAYS_WHY.search(c) for c in comments[:3]):
                unexplained.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} "
                                   f"({length} lines)")
    assert unexplained == [], f"functions over {FUNCTION_LINES} lines without a reason: " \
                              f"{unexplained}"

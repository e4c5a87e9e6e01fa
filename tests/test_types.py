"""The type checker runs with the suite: mypy, strict on ``engine/``, basic on ``gui/``.

Its settings are in ``pyproject.toml`` (``[tool.mypy]``); a type error anywhere in
``engine/`` or ``gui/`` fails this test with mypy's own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_passes_on_engine_and_gui() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, "mypy found type errors:\n" + proc.stdout + proc.stderr

"""Print the conformance score of the differential scenarios at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.differential.harness import score_line


def pytest_terminal_summary(terminalreporter: Any) -> None:
    line = score_line()
    if line:
        terminalreporter.write_sep("=", line)

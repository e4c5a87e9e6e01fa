"""Every differential scenario must answer like qemu-storage-daemon 7.2 (see
:mod:`tests.differential.scenarios`); the score is printed at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.differential.harness import RESULTS, Scenario, run_scenario
from tests.differential.scenarios import SCENARIOS

pytestmark = pytest.mark.qemu


def _param(s: Scenario) -> object:
    marks = [pytest.mark.xfail(reason=s.xfail, strict=False)] if s.xfail else []
    return pytest.param(s, id=s.name, marks=marks)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_scenario_matches_qemu(scenario: Scenario, tmp_path: Path) -> None:
    result = run_scenario(scenario, tmp_path)
    RESULTS[scenario.name] = result
    assert result.matched, f"{scenario.name}: {result.mismatch}"


def test_scenario_names_are_unique() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))

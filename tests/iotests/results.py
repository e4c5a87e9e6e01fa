"""Per-case results of one iotests run, read from what ``check`` leaves behind.

``check`` reports one verdict per test; a Python test holds many cases. A passing
test's cases all passed except those it skipped (``TEST.casenotrun``); a failing
test's output (``TEST.out.bad``, kept in its TEST_DIR) names each failed case in a
``FAIL:``/``ERROR:`` header and counts them all in ``Ran N tests``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_RAN = re.compile(r"^Ran (\d+) tests?", re.M)
# unittest names a case "test_x (__main__.Class)", from Python 3.11 on
# "test_x (__main__.Class.test_x)"
_FAILED = re.compile(r"^(?:FAIL|ERROR): (\w+) \((?:__main__\.)?(\w+)[\w.]*\)", re.M)
_SKIPPED = re.compile(r"\[case not run\] (\w+) \((?:__main__\.)?(\w+)[\w.]*\):? ?(.*)")
#: ``check -tap``: ``ok FMT NAME``, ``not ok FMT NAME``, ``ok FMT NAME # SKIP reason``
_TAP = re.compile(r"^(not ok|ok) \S+ (\S+)(?: # SKIP (.*))?$", re.M)


#: the one "case" of a test whose failure names no case (shell tests, crashes, diffs)
WHOLE_TEST = "(whole test)"


@dataclass
class TestResult:
    """One iotest: its ``check`` verdict and its cases."""

    name: str
    verdict: str                 # pass | fail | not run
    cases: int | None = None     # unittest's count; 1 for a shell test
    failed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    reason: str = ""
    #: why each skipped case was skipped (iotests' own words)
    skip_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        """Cases that ran and passed (0 when the test failed before counting)."""
        if self.verdict == "not run" or self.cases is None:
            return 0
        return self.cases - len(self.failed) - len(self.skipped)

    def counts(self) -> str:
        """``pass/fail/skip`` as a short string."""
        if self.verdict == "not run":
            return f"not run ({self.reason})"
        if self.cases is None:
            return self.verdict
        return (f"{self.passed} pass, {len(self.failed)} fail, "
                f"{len(self.skipped)} skip")


def read_results(tap_output: str, test_dir: Path, iotests_dir: Path,
                 tests: list[str]) -> dict[str, TestResult]:
    """The results of ``tests`` from ``check -tap``'s output and the files it left in
    TEST_DIR; ``iotests_dir`` holds the reference outputs."""
    verdicts = {}
    for status, name, skip in _TAP.findall(tap_output):
        verdicts[name] = ("not run" if skip else "pass") if status == "ok" else "fail"
        if skip:
            verdicts[name + "#reason"] = skip
    results = {}
    for test in tests:
        name = Path(test).name
        verdict = verdicts.get(name, "fail")
        result = TestResult(name, verdict, reason=verdicts.get(name + "#reason", ""))
        here = _test_dir(test_dir, name)
        casenotrun = here / f"{name}.casenotrun"
        if casenotrun.exists():
            text = casenotrun.read_text(encoding="utf-8")
            result.skip_reasons = {f"{cls}.{case}": why
                                   for case, cls, why in _SKIPPED.findall(text)}
            result.skipped = set(result.skip_reasons)
        bad = here / f"{name}.out.bad"
        if verdict == "fail" and bad.exists():
            text = bad.read_text(encoding="utf-8", errors="replace")
            ran = _RAN.search(text)
            result.cases = int(ran.group(1)) if ran else None
            result.failed = {f"{cls}.{case}" for case, cls in _FAILED.findall(text)}
            if result.cases is None or not result.failed:
                # a shell test, or a Python test that stopped before its summary
                result.cases = max(result.cases or 1, 1)
                result.failed = {WHOLE_TEST}
        elif verdict == "pass":
            result.cases = _reference_cases(iotests_dir / f"{test}.out")
        results[name] = result
    return results


def _test_dir(test_dir: Path, name: str) -> Path:
    split = test_dir / name          # check -j N gives each test its own directory
    return split if split.is_dir() else test_dir


def _reference_cases(reference: Path) -> int | None:
    if reference.exists():
        m = _RAN.search(reference.read_text(encoding="utf-8", errors="replace"))
        return int(m.group(1)) if m else 1
    return None

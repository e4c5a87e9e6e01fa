"""QEMU's own block tests 245 (reopen), 030 (stream) and 040 (commit), run in one go on
real qemu-system-x86_64 7.2 and on ``blockgraph qemu``.

Every case that passes on real QEMU in this run must pass on blockgraph, except:

* cases iotests itself skips because a driver is not listed in ``-drive format=help``
  (the engine lists only what it implements); each such skip is checked to be that
  and nothing else;
* the cases in :data:`KNOWN_GAPS`, each with what the engine lacks. The list is
  exact: a gap that closes fails the test too, so that it is taken off the list.

Both targets run at once (``check -j 3`` each) to stay within the suite's budget.
"""

from __future__ import annotations

import shutil

import pytest

from tests.iotests import runner
from tests.iotests.results import WHOLE_TEST

TESTS = ["245", "030", "040"]


#: cases that pass on QEMU and not (yet) on blockgraph, with the reason
KNOWN_GAPS: dict[str, dict[str, str]] = {
    "245": {
    },
    "030": {
    },
    "040": {
    },
}

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(480)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, runner.Run]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed (scripts/bootstrap.sh installs it)")
    work = tmp_path_factory.mktemp("iotests")
    return runner.run(TESTS, jobs=3, work=work)


@pytest.mark.parametrize("test", TESTS)
def test_every_case_passing_on_qemu_passes_on_blockgraph(runs: dict[str, runner.Run],
                                                         test: str) -> None:
    qemu = runs["qemu"].results[test]
    bg = runs["blockgraph"].results[test]
    print(f"{test}: qemu {qemu.counts()} | blockgraph {bg.counts()}")
    assert qemu.verdict == "pass", f"real QEMU fails {test}:\n{runs['qemu'].output}"
    assert bg.cases == qemu.cases, f"{test}: blockgraph ran {bg.cases} cases, QEMU {qemu.cases}"
    assert WHOLE_TEST not in bg.failed, f"{test} failed as a whole on blockgraph"
    for case in sorted(bg.skipped - qemu.skipped):
        why = bg.skip_reasons[case]
        print(f"  skipped on blockgraph: {case}: {why}")
        assert "are not whitelisted" in why, f"{case} skipped for another reason: {why}"
    failing = bg.failed - qemu.failed
    known = set(KNOWN_GAPS[test])
    assert failing - known == set(), f"{test}: new failures on blockgraph"
    assert known - failing == set(), f"{test}: these pass now; take them off KNOWN_GAPS"

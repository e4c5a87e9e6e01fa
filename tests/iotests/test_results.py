"""Reading iotests' results: verdicts, per-case failures and skips, and the deb-src
entries derived from a machine's apt sources."""

from __future__ import annotations

from pathlib import Path

from tests.iotests.qemu_source import deb_src_entries
from tests.iotests.results import WHOLE_TEST, read_results
from tests.iotests.runner import regressions

TAP = """\
1..3
# running qcow2 245
not ok qcow2 245
# running qcow2 030
ok qcow2 030
# running qcow2 001
ok qcow2 001 # SKIP not suitable for this image format
"""

BAD_245 = """\
..F.sE
======================================================================
ERROR: test_b (__main__.TestReopen.test_b)
----------------------------------------------------------------------
FAIL: test_a (__main__.TestReopen)
----------------------------------------------------------------------
Ran 6 tests

FAILED (failures=1, errors=1, skipped=1)
"""


def _fixture(tmp_path: Path) -> tuple[Path, Path]:
    scratch, iotests = tmp_path / "scratch", tmp_path / "iotests"
    for d in (scratch / "245", scratch / "030", iotests):
        d.mkdir(parents=True)
    (scratch / "245" / "245.out.bad").write_text(BAD_245)
    (scratch / "245" / "245.casenotrun").write_text(
        "    [case not run] test_c (__main__.TestReopen.test_c): formats ['quorum'] are "
        "not whitelisted\n")
    (iotests / "030.out").write_text("....\nRan 4 tests\n\nOK\n")
    return scratch, iotests


def test_failed_and_skipped_cases_are_named(tmp_path: Path) -> None:
    scratch, iotests = _fixture(tmp_path)
    res = read_results(TAP, scratch, iotests, ["245", "030", "001"])
    r245 = res["245"]
    assert (r245.verdict, r245.cases) == ("fail", 6)
    assert r245.failed == {"TestReopen.test_a", "TestReopen.test_b"}
    assert r245.skip_reasons == {"TestReopen.test_c": "formats ['quorum'] are not whitelisted"}
    assert r245.passed == 3
    assert (res["030"].verdict, res["030"].passed) == ("pass", 4)
    assert res["001"].verdict == "not run"
    assert res["001"].reason == "not suitable for this image format"


def test_a_test_that_stops_early_fails_as_a_whole(tmp_path: Path) -> None:
    scratch, iotests = _fixture(tmp_path)
    (scratch / "245" / "245.out.bad").write_text("Traceback...\nVMLaunchFailure\n")
    r245 = read_results(TAP, scratch, iotests, ["245"])["245"]
    assert r245.failed == {WHOLE_TEST}


def test_regressions_name_what_blockgraph_lacks(tmp_path: Path) -> None:
    scratch, iotests = _fixture(tmp_path)
    qemu = read_results(TAP.replace("not ok qcow2 245", "ok qcow2 245"), tmp_path / "none",
                        iotests, ["245"])["245"]
    bg = read_results(TAP, scratch, iotests, ["245"])["245"]
    assert regressions(qemu, bg) == ["failed: TestReopen.test_a", "failed: TestReopen.test_b",
                                     "skipped: TestReopen.test_c"]
    assert regressions(bg, bg) == []


def test_deb_src_entries_follow_the_machine_deb_entries(tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nEnabled: no\nURIs: http://off.example\nSuites: x\nComponents: main\n")
    (parts / "extra.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg] http://security.debian.org bookworm-security main\n"
        "deb-src http://already.example bookworm main\n")
    text = deb_src_entries(parts, tmp_path / "missing.list")
    assert text == (
        "Types: deb-src\nURIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb-src\nURIs: http://security.debian.org\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /k.gpg\n")

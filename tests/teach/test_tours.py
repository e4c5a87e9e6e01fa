"""Tours from the command line: --list, --headless end to end, and honest failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gui.commands import tour as tour_cli
from gui.tours.model import TourError, list_tours, parse_tour

TOURS = [t.name for t in list_tours()]
REQUIRED = {"external-snapshot", "stream", "commit", "reopen-backing", "atomic-reopen"}


def test_required_tours_exist() -> None:
    assert set(TOURS) >= REQUIRED


def test_list_prints_one_tour_a_line_name_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert tour_cli.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == TOURS
    assert all(len(ln.split("\t")) == 2 and ln.split("\t")[1] for ln in lines)


@pytest.mark.qemu
@pytest.mark.parametrize("name", TOURS)
def test_tour_headless_against_qemu_storage_daemon(
        name: str, qsd_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every tour's promises (results, error texts, graph facts) hold on QEMU 7.2."""
    status = tour_cli.main([name, "--headless", "--connect", qsd_address])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "All " in out and "!!" not in out


def _tour(tmp_path: Path, expect_error: str) -> Path:
    data = {
        "name": "wrong", "title": "A tour that promises the wrong thing", "intro": "",
        "setup": {"images": [{"file": "a.qcow2", "size": "1M"}]},
        "steps": [
            {"title": "open", "explain": "open a",
             "qmp": {"execute": "blockdev-add", "arguments": {
                 "driver": "qcow2", "node-name": "a",
                 "file": {"driver": "file", "filename": "${DIR}/a.qcow2"}}}},
            {"title": "delete twice", "explain": "x",
             "qmp": {"execute": "blockdev-del", "arguments": {"node-name": "zz"}},
             "expect": {"error": expect_error}},
        ]}
    d = tmp_path / "tours"
    d.mkdir()
    (d / "wrong.json").write_text(json.dumps(data))
    return d


@pytest.mark.qemu
def test_headless_exits_nonzero_when_a_step_differs(
        tmp_path: Path, qsd_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = _tour(tmp_path, "Failed to find node with node-name='somethingelse'")
    assert tour_cli.main(["wrong", "--headless", "--dir", str(d), "--connect",
                          qsd_address]) == 1
    out = capsys.readouterr().out
    assert ("!! expected the error \"Failed to find node with node-name='somethingelse'\", "
            "got \"Failed to find node with node-name='zz'\"") in out
    assert "1 of 2 steps did not go as the tour says" in out


def test_unknown_tour_and_malformed_files(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert tour_cli.main(["no-such-tour", "--headless"]) == 2
    assert "no tour named 'no-such-tour'" in capsys.readouterr().err
    with pytest.raises(TourError, match=r"steps\[0\]: 'explain' is missing"):
        parse_tour({"name": "x", "title": "t", "steps": [{"title": "a"}]})
    with pytest.raises(TourError, match=r"an expected error needs a 'qmp' command"):
        parse_tour({"name": "x", "title": "t",
                    "steps": [{"title": "a", "explain": "b", "expect": {"error": "e"}}]})
    with pytest.raises(TourError, match=r"images\[0\]: 'file' must be a plain file name"):
        parse_tour({"name": "x", "title": "t", "setup": {"images": [
            {"file": "../escape.qcow2", "size": "1M"}]},
            "steps": [{"title": "a", "explain": "b"}]})
    with pytest.raises(TourError, match=r"unknown member\(s\) bogus"):
        parse_tour({"name": "x", "title": "t", "bogus": 1,
                    "steps": [{"title": "a", "explain": "b"}]})


def test_unreachable_peer_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert tour_cli.main(["stream", "--headless", "--connect",
                          f"unix:{tmp_path}/no.sock"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockgraph tour: ") and "no.sock" in err


@pytest.mark.parametrize("name", TOURS)
def test_tour_headless_on_the_bundled_engine(name: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``blockgraph tour NAME --headless``: a fresh bundled engine, every step as promised."""
    from gui.cli import main

    status = main(["tour", name, "--headless"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Peer: bundled engine" in out
    assert f"All {out.count('] ')} steps went as the tour says" in out

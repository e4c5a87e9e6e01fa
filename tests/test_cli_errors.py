"""CLI error messages as a user sees them: one clear line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui import cli


def test_replay_to_an_unreachable_peer_says_cannot_connect_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.qmp"
    script.write_text("query-version\n")
    status = cli.main(["replay", str(script), "--connect", f"unix:{tmp_path}/none.sock"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("cannot connect") == 1, err
    assert "No such file or directory" in err
    assert "Traceback" not in err

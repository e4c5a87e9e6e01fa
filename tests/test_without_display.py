"""Without a display: window-opening commands say what to do instead of Qt aborting,
and scripts/run puts exactly those on a virtual X screen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.lifecycle.display import missing_display

ROOT = Path(__file__).resolve().parents[1]


def _env_without_display(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(extra)
    return env


def test_missing_display_only_on_linux_without_any_screen() -> None:
    assert missing_display({}, "linux") is not None
    assert missing_display({"DISPLAY": "remote.example:0"}, "linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert missing_display({}, "darwin") is None


def test_a_local_display_counts_only_when_its_x_server_answers() -> None:
    import subprocess as sp
    import time

    number = 900 + os.getpid() % 90
    assert "no X server" in (missing_display({"DISPLAY": f":{number}"}, "linux") or "")
    xvfb = sp.Popen(["Xvfb", f":{number}", "-screen", "0", "320x240x24"],
                    stdout=sp.DEVNULL, stderr=sp.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while missing_display({"DISPLAY": f":{number}.0"}, "linux") is not None:
            assert xvfb.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        xvfb.terminate()
        xvfb.wait()


@pytest.mark.parametrize("argv", [
    [],
    ["--connect", "unix:/nonexistent"],
    ["tour", "stream"],
    ["offline", "x.qcow2"],
], ids=["editor", "connect", "tour-window", "offline-window"])
@pytest.mark.parametrize("display", ["", ":987"], ids=["unset", "stale"])
def test_window_commands_without_display_exit_with_a_hint(argv: list[str], display: str,
                                                          tmp_path: Path) -> None:
    extra = {"DISPLAY": display} if display else {}
    proc = subprocess.run([sys.executable, "-m", "gui.cli", *argv], cwd=ROOT,
                          env=_env_without_display(HOME=str(tmp_path), **extra),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert ("no display" if not display else "no X server answers") in proc.stderr
    assert "xvfb-run" in proc.stderr
    assert "Aborted" not in proc.stderr and "platform plugin" not in proc.stderr


def _run_script(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """scripts/run with a stand-in virtual screen that only says how it was called."""
    fake = tmp_path / "virtual-screen"
    fake.write_text('#!/bin/sh\necho "virtual-screen $*"\n')
    fake.chmod(0o755)
    env = _env_without_display(BLOCKGRAPH_VIRTUAL_SCREEN=str(fake),
                               BLOCKGRAPH_VENV=str(Path(sys.prefix)), HOME=str(tmp_path))
    return subprocess.run(["bash", str(ROOT / "scripts" / "run"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [[], ["--connect", "unix:/tmp/qsd.sock"], ["disk.qcow2"],
                                  ["tour", "stream"], ["offline", "a.qcow2"]])
def test_run_script_puts_windows_on_a_virtual_screen(args: list[str], tmp_path: Path) -> None:
    proc = _run_script(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == " ".join(["virtual-screen blockgraph", *args])


@pytest.mark.parametrize("args", [["--version"], ["info", "--help"], ["tour", "--list"],
                                  ["render", "--help"]])
def test_run_script_runs_headless_commands_directly(args: list[str], tmp_path: Path) -> None:
    proc = _run_script(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "virtual-screen" not in proc.stdout
    assert proc.stdout.strip()

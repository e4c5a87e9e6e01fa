"""``bash scripts/run`` without a display: the editor comes up on a real virtual screen
(scripts/virtual-screen: Xvfb, xauth), opens the demo, stays up, and closes cleanly on Ctrl+C."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.processes import open_files, session_pids, wait_until

ROOT = Path(__file__).resolve().parents[1]

#: What scripts/run itself says on stderr when it starts a virtual screen.
ORDINARY_LINES = (
    "blockgraph: no display found; running the editor on a virtual X screen (Xvfb).",
    "blockgraph: for a picture instead, try: scripts/run render --demo -o demo.png",
)


def test_the_editor_comes_up_on_a_virtual_screen_and_stays_until_ctrl_c(
        tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env.update(HOME=str(tmp_path), TMPDIR=str(scratch))
    err = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run"),
                             "--settings", str(tmp_path / "s.ini"), "--demo-dir", str(demo)],
                            env=env, stdout=subprocess.DEVNULL, stderr=err,
                            start_new_session=True)
    try:
        # the demo's chains are open in the bundled engine
        wait_until(lambda: len({p for p in open_files(session_pids(proc.pid))
                                if p.startswith(str(demo))}) >= 5,
                   "the editor opened the demo", timeout=90,
                   alive=lambda: proc.poll() is None)
        assert proc.poll() is None
        screen = [pid for pid in _processes() if str(scratch) in _cmdline(pid)]
        assert screen, "no virtual screen under scripts/run"
        os.killpg(proc.pid, signal.SIGINT)   # Ctrl+C in the terminal
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err.seek(0)
    lines = [line for line in err.read().splitlines() if line.strip()]
    assert lines == list(ORDINARY_LINES), lines
    assert "geometry=" in (tmp_path / "s.ini").read_text()
    # the screen went with the editor: no X server left, its cookie and files removed
    assert not [pid for pid in _processes() if str(scratch) in _cmdline(pid)]
    assert list(scratch.iterdir()) == []


def _processes() -> list[int]:
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""

"""Ctrl+C / SIGTERM end the editor, the tour and the offline window cleanly (status 0)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import open_files, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_signal_closes_the_editor_and_saves_settings(tmp_path: Path, signum: int) -> None:
    settings = tmp_path / "s.ini"
    demo = tmp_path / "demo"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "gui.cli", "--settings", str(settings),
                             "--demo-dir", str(demo)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_demo(proc, demo)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    text = settings.read_text()
    assert "geometry=" in text and "scheme=" in text


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its own SIGTERM handler (Python does not by
    default), so a signal sent now reaches the window and not the default action."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _wait_for_demo(proc: subprocess.Popen[str], demo: Path) -> None:
    """Until the editor's bundled engine holds the demo's images open."""
    wait_until(lambda: len({p for p in open_files([proc.pid]) if p.startswith(str(demo))})
               >= 5, "the editor opened the demo", alive=lambda: proc.poll() is None)


def _wait_for_window(proc: subprocess.Popen[str]) -> None:
    """Until the window's process handles SIGTERM itself (its window is up)."""
    deadline = time.monotonic() + 60
    while not _handles_sigterm(proc.pid):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the window never came up"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("window", ["tour", "offline"])
def test_signal_closes_the_tour_and_offline_windows(tmp_path: Path, window: str,
                                                    signum: int) -> None:
    from engine.formats import create_qcow2

    image = tmp_path / "disk.qcow2"
    create_qcow2(image, 1 << 20)
    args = ["tour", "stream"] if window == "tour" else ["offline", str(image)]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "gui.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_window(proc)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out


def _x_setup_succeeds(number: str) -> bool:
    """Whether display ``:number`` completes X11 connection setup for us, reached the
    way libxcb reaches it (abstract socket first, then the socket file)."""
    request = struct.pack("<cxHHHHxx", b"l", 11, 0, 0, 0)  # little-endian, X11.0, no auth
    for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            try:
                sock.connect(address)
            except OSError:
                continue
            try:
                sock.sendall(request)
                return sock.recv(1) == b"\x01"
            except OSError:
                return False
    return False


@pytest.fixture
def x_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private Xvfb on a free display (``-displayfd`` says which), once a client has
    completed connection setup on it. ``-noreset``: that client's leaving does not make
    the server reset under the window's own connection."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                             "1024x768x24", "-nolisten", "tcp", "-noreset"],
                            pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as ready:
            number = ready.readline().strip()
        assert number, "Xvfb did not start"
        deadline = time.monotonic() + 30
        while not _x_setup_succeeds(number):
            assert xvfb.poll() is None, "Xvfb exited"
            assert time.monotonic() < deadline, f"Xvfb on :{number} never completed a setup"
            time.sleep(0.05)
        yield f":{number}", xvfb
    finally:
        if xvfb.poll() is None:
            xvfb.kill()
        xvfb.wait()


@pytest.mark.parametrize("with_sigint", [False, True], ids=["x-dies", "x-dies+INT"])
@pytest.mark.parametrize("window", ["editor", "tour", "offline"])
def test_windows_end_cleanly_when_their_x_server_goes_away(
        tmp_path: Path, x_server: tuple[str, subprocess.Popen[bytes]], window: str,
        with_sigint: bool) -> None:
    """As when Ctrl+C in the terminal reaches both xvfb-run's server and the program:
    no traceback, no crash, settings saved, the bundled engine's images closed and a
    tour's scratch directory removed."""
    from engine.formats import create_qcow2

    display, xvfb = x_server
    image = tmp_path / "disk.qcow2"
    create_qcow2(image, 1 << 20)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    settings = tmp_path / "s.ini"
    args = {"editor": ["--settings", str(settings), "--demo-dir", str(tmp_path / "demo")],
            "tour": ["tour", "stream"], "offline": ["offline", str(image)]}[window]
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=display, HOME=str(tmp_path), TMPDIR=str(scratch))
    proc = subprocess.Popen([sys.executable, "-m", "gui.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_window(proc)
        if window == "editor":
            _wait_for_demo(proc, tmp_path / "demo")
        elif window == "tour":   # the tour's scratch images are there
            wait_until(lambda: any(scratch.glob("blockgraph-tour-*/*")),
                       "the tour made its images", alive=lambda: proc.poll() is None)
        xvfb.terminate()
        if with_sigint:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out and "Exception ignored" not in out, out
    # Qt's own status when the display breaks under a plain app.exec() is 1
    assert proc.returncode == (1 if window == "offline" else 0), out
    if window == "editor":
        assert "geometry=" in settings.read_text()
    if window == "tour":
        assert list(scratch.iterdir()) == [], "the tour's scratch files were left behind"


_XLIB_CLIENT = """
import ctypes, os, sys
from gui.lifecycle.x_connection import on_x_connection_lost

def end():
    print("ended by our handler", flush=True)
    os._exit(0)

if sys.argv[2] == "ours":
    assert on_x_connection_lost(end)
xlib = ctypes.CDLL("libX11.so.6")
xlib.XOpenDisplay.restype = ctypes.c_void_p
xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
xlib.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
display = xlib.XOpenDisplay(sys.argv[1].encode())
assert display
print("open", flush=True)
sys.stdin.readline()   # the X server is gone now
xlib.XSync(display, 0)
print("XSync returned", flush=True)
"""


@pytest.mark.parametrize("handler", ["ours", "xlib's"])
def test_a_broken_x_connection_seen_by_xlib_reaches_our_handler(
        x_server: tuple[str, subprocess.Popen[bytes]], handler: str) -> None:
    """Xlib's own handler prints and exits 1 (what a window must not do: see
    gui.lifecycle.x_connection); ours ends the process through the window's code."""
    display, xvfb = x_server
    proc = subprocess.Popen([sys.executable, "-c", _XLIB_CLIENT, display, handler],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "open"
        xvfb.terminate()
        xvfb.wait(timeout=30)
        out, _ = proc.communicate("\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if handler == "ours":
        assert (proc.returncode, out.strip()) == (0, "ended by our handler")
    else:
        # "X connection to :N broken" or "XIO: fatal IO error", by how the read failed
        assert proc.returncode == 1 and ("X connection to" in out or "XIO:" in out), out

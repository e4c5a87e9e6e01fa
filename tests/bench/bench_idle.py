"""What an idle editor costs: CPU of the editor and of its peer over 60 s, 2,000 nodes open.

The peer is a real qemu-storage-daemon 7.2 holding 1,000 qcow2 images in 20 chains of
50, added by reference (2,000 nodes with their ``file`` nodes). The editor is
``blockgraph --connect`` itself (offscreen, default settings), started as its own
process; once it has drawn the graph and settled, nothing is done for 60 s and the CPU
time both processes used meanwhile (``/proc/PID/stat``: user + system) is divided by
the wall time. In a VM's QEMU the peer's share runs under the lock the guest's I/O
needs, so the row counts both. The 60 s are taken as five consecutive windows of 12 s:
the figure is their mean (the whole minute: the editor's slow safety re-read falls in
one window, and a median would leave it out), the spread their smallest and largest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.formats import create_qcow2
from tests.bench.report import Report
from tests.support.peer import Peer

BENCH = "idle"
IMAGES = 1000
CHAIN = 50
IDLE_SECONDS = 60.0
WINDOWS = 5
SETTLE_SECONDS = 5.0
REPO = Path(__file__).resolve().parents[2]

#: the real editor start-up, saying when its first graph is on the canvas
EDITOR = """
import sys
from gui.window import app

open_remote = app.MainWindow.open_remote

async def announced(self, address):
    ok = await open_remote(self, address)
    print("ready", len(self.scene.nodes), flush=True)
    return ok

app.MainWindow.open_remote = announced
sys.exit(app.main(sys.argv[1:]))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fill(peer: Peer, work: Path) -> None:
    for i in range(IMAGES):
        path = work / f"c{i}.qcow2"
        create_qcow2(path, 1 << 20)
        peer.ok("blockdev-add", {"driver": "qcow2", "node-name": f"n{i}",
                                 "file": {"driver": "file", "filename": str(path)},
                                 "backing": f"n{i - 1}" if i % CHAIN else None})


def _idle_cpu(peer: Peer, work: Path) -> tuple[list[float], list[float], int]:
    """(editor %, peer %) in each window of an idle editor, and the nodes drawn."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(work),
               PYTHONPATH=str(REPO))
    editor = subprocess.Popen(
        [sys.executable, "-c", EDITOR, "--connect", peer.address,
         "--settings", str(work / "settings.ini")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    editor_pct: list[float] = []
    peer_pct: list[float] = []
    try:
        assert editor.stdout is not None
        line = editor.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise RuntimeError(f"the editor did not come up ({line})")
        nodes = int(line[1])
        time.sleep(SETTLE_SECONDS)   # the first paint, the minimap, the last replies
        assert peer.proc is not None
        pids = (editor.pid, peer.proc.pid)
        before = [cpu_seconds(pid) for pid in pids]
        t0 = time.monotonic()
        for i in range(1, WINDOWS + 1):
            time.sleep(max(0.0, t0 + i * IDLE_SECONDS / WINDOWS - time.monotonic()))
            now = time.monotonic()
            after = [cpu_seconds(pid) for pid in pids]
            wall = now - t0
            editor_pct.append((after[0] - before[0]) / wall * 100)
            peer_pct.append((after[1] - before[1]) / wall * 100)
            before, t0 = after, now
    finally:
        editor.terminate()
        try:
            editor.wait(30)
        except subprocess.TimeoutExpired:
            editor.kill()
            editor.wait()
    return editor_pct, peer_pct, nodes


def run(report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="bg-bench-idle-") as tmp:
        work = Path(tmp)
        (work / "peer").mkdir()
        peer = Peer(work / "peer")
        peer.start()
        try:
            _fill(peer, work)
            editor_pct, peer_pct, nodes = _idle_cpu(peer, work)
        finally:
            peer.stop()
    both = [e + p for e, p in zip(editor_pct, peer_pct, strict=True)]
    print(f"  ({nodes} nodes drawn; editor {sum(editor_pct) / WINDOWS:.2f} %, "
          f"qemu-storage-daemon {sum(peer_pct) / WINDOWS:.2f} % of one CPU)", flush=True)
    report.add(BENCH, "idle CPU, 2,000 nodes", both, "%", target="< 1 %", summary="mean")

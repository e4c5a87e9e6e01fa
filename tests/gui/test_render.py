"""``blockgraph render``: headless drawings of the demo, of an image chain, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.formats import create_qcow2
from gui.views.export import format_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gui


def render(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CACHE_HOME="/nonexistent")
    return subprocess.run([sys.executable, "-m", "gui.cli", "render", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_demo_to_svg_and_png(tmp_path: Path) -> None:
    svg, png = tmp_path / "demo.svg", tmp_path / "demo.png"
    for out in (svg, png):
        proc = render("--demo", "-o", str(out))
        assert proc.returncode == 0, proc.stderr
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text
    for name in ("vm1-top", "vm1-mid", "base", "spare"):
        assert name in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_image_chain_to_dot_and_json(tmp_path: Path) -> None:
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    create_qcow2(base, 1 << 20)
    create_qcow2(top, 1 << 20, backing_file="base.qcow2", backing_format="qcow2")
    dot, js = tmp_path / "g.dot", tmp_path / "g.json"
    for out in (dot, js):
        proc = render(str(top), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
    assert dot.read_text().startswith("digraph blockgraph {")
    data = json.loads(js.read_text())
    nodes = {n["key"]: n for n in data["nodes"]}
    assert nodes["top"]["driver"] == "qcow2"
    backing = [e for e in data["edges"] if e["parent"] == "top" and e["role"] == "backing"]
    assert len(backing) == 1
    assert nodes[backing[0]["child"]]["filename"].endswith("base.qcow2")
    assert all("x" in n and "y" in n for n in data["nodes"])


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    proc = render(str(tmp_path / "missing.qcow2"), "-o", str(tmp_path / "x.svg"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("blockgraph render: ") and "Traceback" not in proc.stderr
    proc = render("--demo", "-o", str(tmp_path / "x.bmp"))
    assert proc.returncode == 2 and "cannot tell the format" in proc.stderr
    with pytest.raises(ValueError):
        format_for("a.txt")

"""File → Export to DOT writes labels Graphviz reads back as written.

Each node's label is its name, its driver and its image's file name, one per line.
They came out as ``namen\\drivern\\…`` (the line breaks built wrong, backslashes and
quotes in file names unescaped). Here the window exports a graph holding a file whose
name has a quote and a backslash, and Graphviz's own SVG of that DOT file shows each
node's three lines exactly.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from engine.formats import create_qcow2
from gui.window.main_window import MainWindow
from tests.gui.conftest import run
from tests.gui.test_edits import idle

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is installed "
                                 "by scripts/bootstrap.sh")]
SVG = "{http://www.w3.org/2000/svg}"


def svg_labels(dot_file: Path) -> dict[str, list[str]]:
    """Node title -> its label lines, as Graphviz draws them."""
    svg = subprocess.run(["dot", "-Tsvg", str(dot_file)], check=True, capture_output=True,
                         text=True).stdout
    out: dict[str, list[str]] = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        if g.get("class") == "node":
            title = g.find(f"{SVG}title")
            assert title is not None and title.text is not None
            out[title.text] = [t.text or "" for t in g.iter(f"{SVG}text")]
    return out


def test_dot_export_labels_read_back_as_written(qtbot: Any, aloop: Any, window: MainWindow,
                                               tmp_path: Path) -> None:
    odd = tmp_path / 'disk "one" \\ two.qcow2'
    create_qcow2(odd, 1 << 20)
    assert run(qtbot, aloop, window.open_bundled(demo=False))
    window.open_image(str(odd))
    qtbot.waitUntil(lambda: window.scene.snapshot is not None and len(
        window.scene.snapshot.nodes) == 2 and idle(window), timeout=10000)
    (name,) = [k for k, n in window.scene.snapshot.nodes.items() if n.driver == "qcow2"]
    out = tmp_path / "graph.dot"
    window.export_to(str(out))
    labels = svg_labels(out)
    assert labels[name] == [name, "qcow2", odd.name]
    file_node = window.scene.snapshot.child(name, "file")
    assert labels[file_node] == [file_node, "file", odd.name]

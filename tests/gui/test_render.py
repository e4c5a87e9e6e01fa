"""``blockgraph render``: headless drawings of the demo, of an image chain, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.formats import create_qcow2
from gui.views.export import drawing_of, export, format_for
from gui.views.layout import quality

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


def test_json_holds_the_drawing_as_the_scene_has_it(tmp_path: Path) -> None:
    """Every node's rectangle and every edge's drawn line: each line starts on its
    parent's card and ends on its child's, enters no other card, and no two cards
    overlap."""
    out = tmp_path / "demo.json"
    proc = render("--demo", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    rects = {n["key"]: (n["x"], n["y"], n["width"], n["height"]) for n in data["nodes"]}
    assert all(w > 0 and h > 0 for _, _, w, h in rects.values())
    paths = {(e["parent"], e["role"], e["child"]): [tuple(p) for p in e["path"]]
             for e in data["edges"]}
    assert len(paths) == len(data["edges"]) > 0

    def on_border(p: tuple[float, float], r: tuple[float, float, float, float]) -> bool:
        x, y, w, h = r
        inside = x - 0.01 <= p[0] <= x + w + 0.01 and y - 0.01 <= p[1] <= y + h + 0.01
        return inside and min(abs(p[0] - x), abs(p[0] - x - w), abs(p[1] - y),
                              abs(p[1] - y - h)) < 0.02

    for (parent, _role, child), path in paths.items():
        assert len(path) >= 2
        assert on_border(path[0], rects[parent]), (parent, path[0])
        assert on_border(path[-1], rects[child]), (child, path[-1])
    assert quality.links_through_cards(rects, paths) == []
    assert quality.overlaps(rects) == []
    frames = data["frames"]
    assert {f["label"] for f in frames} == {"vm3, vm2, vm1"}


def test_pdf_is_paged_at_a_legible_scale(qapp: Any, tmp_path: Path) -> None:
    from gui.views import pictures
    from gui.views.export import page_aspect
    from gui.views.scene import GraphScene
    from tests.support.graphs import vm_farm

    scene = GraphScene()
    scene.aspect = page_aspect("pdf")
    scene.show_snapshot(vm_farm(1000))
    out = tmp_path / "farm.pdf"
    assert export(scene, out) == [out]
    text = out.read_bytes()
    assert text.startswith(b"%PDF")
    pages = text.count(b"/Type /Page\n") + text.count(b"/Type /Page ") + text.count(
        b"/Type /Page>")
    rect = scene.graph_rect()
    # an A4 page at the legible scale holds about 1,600 x 1,100 scene units
    assert pages >= (rect.width() * rect.height()) / (1700 * 1200 * pictures.LEGIBLE_SCALE
                                                      ** -2)
    assert pages > 1


def test_a_png_too_big_to_be_legible_is_paged_with_an_overview(
        qapp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtGui import QImage

    from gui.views import pictures
    from gui.views.scene import GraphScene
    from tests.gui.test_layout import chains

    scene = GraphScene()
    scene.show_snapshot(chains())
    rect = scene.graph_rect()
    out = tmp_path / "g.png"
    assert export(scene, out) == [out]           # small: one picture at 100 %
    assert QImage(str(out)).width() == int(rect.width()) + (rect.width() % 1 > 0)
    monkeypatch.setattr(pictures, "MAX_PIXELS", 20_000)
    monkeypatch.setattr(pictures, "PNG_PAGE", 400)
    written = export(scene, out)
    assert written[0] == out and len(written) > 2
    for page in written[1:]:
        img = QImage(str(page))
        assert 0 < img.width() <= 400 and 0 < img.height() <= 400


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    proc = render(str(tmp_path / "missing.qcow2"), "-o", str(tmp_path / "x.svg"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("blockgraph render: ") and "Traceback" not in proc.stderr
    proc = render("--demo", "-o", str(tmp_path / "x.bmp"))
    assert proc.returncode == 2 and "cannot tell the format" in proc.stderr
    with pytest.raises(ValueError):
        format_for("a.txt")


def test_a_fresh_scene_draws_what_render_writes(qapp: Any) -> None:
    """``render -o FILE.json`` lays out without Qt; the editor's scene, given the same
    graph, draws exactly that: the same rectangles, the same lines."""
    from gui.views.scene import GraphScene
    from tests.support.graphs import vm_farm

    snap = vm_farm(300)
    scene = GraphScene()
    scene.show_snapshot(snap)
    shown, written = scene.drawing(), drawing_of(snap)
    assert shown.rects == written.rects
    assert shown.paths == written.paths
    assert shown.frames == written.frames

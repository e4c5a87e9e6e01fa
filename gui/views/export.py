"""The graph written to a file: SVG, PNG, DOT or JSON, the format named by the extension.

File → Export in the editor and ``blockgraph render`` (:mod:`gui.commands.render`)
both write through :func:`export`; SVG and PNG are drawn by the scene itself, so they
look like the canvas. DOT and JSON carry the layout's positions. Qt is imported only
where SVG and PNG are drawn (lazily), so DOT and JSON are written without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".json": "json"}


def format_for(path: str | os.PathLike[str]) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r}: "
                         "use .svg, .png, .dot or .json")
    return FORMATS[ext]


# -- exports (need a QApplication for svg/png) -------------------------------------------
def export(scene: Any, path: str | os.PathLike[str]) -> None:
    """Write ``scene`` (a GraphScene) to ``path`` in the format its extension names."""
    fmt = format_for(path)
    if fmt == "svg":
        write_svg(scene, path)
    elif fmt == "png":
        write_png(scene, path)
    elif fmt == "dot":
        Path(path).write_text(to_dot(scene.snapshot, scene.positions()))
    else:
        Path(path).write_text(json.dumps(to_json(scene.snapshot, scene.positions()), indent=2)
                              + "\n")


def write_svg(scene: Any, path: str | os.PathLike[str]) -> None:
    from PySide6.QtCore import QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    rect = scene.graph_rect()
    gen = QSvgGenerator()
    gen.setFileName(os.fspath(path))
    gen.setSize(QSize(int(rect.width()), int(rect.height())))
    gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    gen.setTitle("blockgraph")
    gen.setDescription("QEMU block graph drawn by blockgraph")
    painter = QPainter(gen)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    painter.end()


def write_png(scene: Any, path: str | os.PathLike[str], max_side: int = 8000) -> None:
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    rect = scene.graph_rect()
    scale = min(1.0, max_side / max(rect.width(), rect.height(), 1))
    img = QImage(max(1, int(rect.width() * scale)), max(1, int(rect.height() * scale)),
                 QImage.Format.Format_ARGB32)
    img.fill(scene.backgroundBrush().color())
    painter = QPainter(img)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    scene.render(painter, QRectF(0, 0, img.width(), img.height()), rect)
    painter.end()
    if not img.save(os.fspath(path), "PNG"):
        raise OSError(f"cannot write {os.fspath(path)}")


def _dot_id(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines: list[str]) -> str:
    """A DOT label of ``lines``: each escaped (backslash, quote), joined by DOT's ``\\n``."""
    return '"' + "\\n".join(x.replace("\\", "\\\\").replace('"', '\\"')
                             for x in lines) + '"'


def to_dot(snapshot: Any, positions: dict[str, tuple[float, float]] | None = None) -> str:
    """Graphviz DOT of the graph; positions (points, y up) when given."""
    lines = ["digraph blockgraph {", "  rankdir=TB;", '  node [shape=box, style="rounded"];']
    for key, n in snapshot.nodes.items():
        label = [n.name or "(anonymous)", n.driver or n.kind]
        if n.filename and not n.filename.startswith("json:"):
            label.append(os.path.basename(n.filename))
        attrs = [f"label={_dot_label(label)}"]
        if n.read_only:
            attrs.append('color="#a05a00"')
        if n.kind != "block-node":
            attrs.append('shape="ellipse"')
        if positions and key in positions:
            x, y = positions[key]
            attrs.append(f'pos="{x / 1.0:.0f},{-y:.0f}!"')
        lines.append(f"  {_dot_id(key)} [{', '.join(attrs)}];")
    styles = {"backing": "bold", "file": "dashed"}
    for e in snapshot.edges:
        style = styles.get(e.role, "dotted" if e.parent.startswith("job:") else "solid")
        lines.append(f'  {_dot_id(e.parent)} -> {_dot_id(e.child)} '
                     f'[label="{e.role}", style={style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(snapshot: Any, positions: dict[str, tuple[float, float]] | None = None
            ) -> dict[str, Any]:
    """The graph as plain JSON: nodes (with position) and edges with permissions."""
    nodes = []
    for key, n in snapshot.nodes.items():
        entry: dict[str, Any] = {
            "key": key, "kind": n.kind, "name": n.name, "driver": n.driver,
            "read-only": n.read_only, "filename": n.filename,
            "virtual-size": n.virtual_size, "actual-size": n.actual_size,
        }
        if positions and key in positions:
            entry["x"], entry["y"] = positions[key]
        nodes.append(entry)
    edges = [{"parent": e.parent, "child": e.child, "role": e.role, "perm": list(e.perm),
              "shared-perm": list(e.shared_perm)} for e in snapshot.edges]
    return {"nodes": nodes, "edges": edges}

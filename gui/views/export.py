"""The graph written to a file: SVG, PNG, PDF, DOT or JSON, the format named by the
extension.

File → Export in the editor and ``blockgraph render`` (:mod:`gui.commands.render`)
both write through :func:`export`; SVG, PNG and PDF are drawn by the scene itself, so
they look like the canvas, at a scale where card text can be read
(:mod:`gui.views.pictures`). JSON holds the drawing: each node's rectangle and each
edge's line as drawn; DOT the cards' positions. Qt is imported only where pictures
are drawn (lazily), so DOT and JSON are written without it: :func:`drawing_of` lays a
snapshot out exactly as a fresh scene does (the same layout, the same rounded lines).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gui.views.layout import DEFAULT_ASPECT, DEFAULT_GEOMETRY, Drawing, draw, rounded

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot",
           ".json": "json"}


def format_for(path: str | os.PathLike[str]) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r}: "
                         "use .svg, .png, .pdf, .dot or .json")
    return FORMATS[ext]


def page_aspect(fmt: str) -> float:
    """Width / height of the page an export of ``fmt`` is laid out for: A4 landscape
    for PDF, a 16:10 screen otherwise."""
    return 2 ** 0.5 if fmt == "pdf" else DEFAULT_ASPECT


def drawing_of(snapshot: Any, aspect: float = DEFAULT_ASPECT) -> Drawing:
    """The drawing a fresh scene of ``snapshot`` shows: cards where the layout puts
    them, each link's line as drawn (corners rounded), the VM frames."""
    d = draw(snapshot, DEFAULT_GEOMETRY, aspect)
    d.paths = {k: rounded(pts) for k, pts in d.paths.items()}
    return d


# -- exports (need a QApplication for svg/png/pdf) ---------------------------------------
def export(scene: Any, path: str | os.PathLike[str]) -> list[Path]:
    """Write ``scene`` (a GraphScene) to ``path`` in the format its extension names;
    returns the files written (a PNG too big to be legible is paged)."""
    fmt = format_for(path)
    if fmt in ("svg", "png", "pdf"):
        # lazily: Qt's painting is loaded only to draw pictures
        from gui.views import pictures

        writers = {"svg": pictures.write_svg, "png": pictures.write_png,
                   "pdf": pictures.write_pdf}
        return writers[fmt](scene, path)
    if fmt == "dot":
        Path(path).write_text(to_dot(scene.shown, scene.positions()))
    else:
        Path(path).write_text(json.dumps(to_json(scene.shown, scene.drawing()), indent=2)
                              + "\n")
    return [Path(path)]


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


def to_json(snapshot: Any, drawing: Drawing | None = None) -> dict[str, Any]:
    """The graph as plain JSON: nodes and edges with permissions and, given a drawing
    (:meth:`GraphScene.drawing`, :func:`drawing_of`), each node's rectangle (``x``,
    ``y``: top-left corner, ``width``, ``height``, scene coordinates), each edge's
    line as drawn (``path``: its points) and the VM frames."""
    rects = drawing.rects if drawing is not None else {}
    paths = drawing.paths if drawing is not None else {}
    nodes = []
    for key, n in snapshot.nodes.items():
        entry: dict[str, Any] = {
            "key": key, "kind": n.kind, "name": n.name, "driver": n.driver,
            "read-only": n.read_only, "filename": n.filename,
            "virtual-size": n.virtual_size, "actual-size": n.actual_size,
        }
        if key in rects:
            x, y, w, h = rects[key]
            entry.update(x=round(x, 2), y=round(y, 2), width=round(w, 2), height=round(h, 2))
        nodes.append(entry)
    edges = []
    for e in snapshot.edges:
        entry = {"parent": e.parent, "child": e.child, "role": e.role, "perm": list(e.perm),
                 "shared-perm": list(e.shared_perm)}
        path = paths.get((e.parent, e.role, e.child))
        if path is not None:
            entry["path"] = [[round(x, 2), round(y, 2)] for x, y in path]
        edges.append(entry)
    out: dict[str, Any] = {"nodes": nodes, "edges": edges}
    if drawing is not None:
        out["frames"] = [{"label": f.label, "x": f.rect[0], "y": f.rect[1],
                          "width": f.rect[2], "height": f.rect[3]} for f in drawing.frames]
    return out

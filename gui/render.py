"""``blockgraph render``: draw a graph to SVG, PNG, PDF, DOT or JSON without a window.

    blockgraph render --demo -o demo.svg
    blockgraph render --connect unix:/run/qsd.sock -o graph.png
    blockgraph render disk.qcow2 -o chain.dot
    blockgraph render --connect unix:/run/qsd.sock -o host.pdf    # paged, legible

The same layers as the editor: a session (bundled engine or remote QEMU) reads the
graph, the layout places it, the scene draws it — for every format, so a JSON file
holds the drawing as the scene has it (each node's rectangle, each edge's line as
drawn). The format follows the output's extension; the layout follows its page's
shape. The export functions here also serve File → Export in the editor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot",
           ".json": "json"}


def format_for(path: str | os.PathLike[str]) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r}: "
                         "use .svg, .png, .pdf, .dot or .json")
    return FORMATS[ext]


# -- exports (need a QApplication for svg/png/pdf) ---------------------------------------
def export(scene: Any, path: str | os.PathLike[str]) -> list[Path]:
    """Write ``scene`` (a GraphScene) to ``path`` in the format its extension names;
    returns the files written (a big PNG is paged: see :mod:`gui.views.export`)."""
    fmt = format_for(path)
    if fmt in ("svg", "png", "pdf"):
        from gui.views import export as pictures

        return {"svg": pictures.write_svg, "png": pictures.write_png,
                "pdf": pictures.write_pdf}[fmt](scene, path)
    if fmt == "dot":
        Path(path).write_text(to_dot(scene.shown, scene.positions()))
    else:
        Path(path).write_text(json.dumps(to_json(scene.shown, scene.drawing()), indent=2)
                              + "\n")
    return [Path(path)]


def _dot_id(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(snapshot: Any, positions: dict[str, tuple[float, float]] | None = None) -> str:
    """Graphviz DOT of the graph; positions (points, y up) when given."""
    lines = ["digraph blockgraph {", "  rankdir=TB;", '  node [shape=box, style="rounded"];']
    for key, n in snapshot.nodes.items():
        label = [n.name or "(anonymous)", n.driver or n.kind]
        if n.filename and not n.filename.startswith("json:"):
            label.append(os.path.basename(n.filename))
        attrs = [f'label="{chr(92).join(x.replace(chr(34), "") + "n" for x in label)}"']
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


def to_json(snapshot: Any, drawing: Any = None) -> dict[str, Any]:
    """The graph as plain JSON: nodes and edges with permissions and, given the
    scene's drawing (:meth:`GraphScene.drawing`), each node's rectangle (``x``,
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


# -- the command -------------------------------------------------------------------------
async def read_snapshot(args: argparse.Namespace) -> Any:
    """Connect as the editor would, build the demo / open the image, return the graph."""
    if args.connect and _is_libvirt(args.connect):
        from gui.libvirt.headless import domain_from, read_domain

        snapshot, args.libvirt_domain = await read_domain(*domain_from(args.connect,
                                                                        args.domain))
        return snapshot
    from gui.peers import BundledPeer, remote_endpoint
    from gui.session import Session

    bundled = None
    if args.connect:
        endpoint = remote_endpoint(args.connect)
    else:
        bundled = BundledPeer()
        endpoint = bundled.endpoint
    session = Session(endpoint, auto_reconnect=False, poll_interval=None)
    try:
        await session.connect()
        if args.demo:
            from gui.demo import build_demo

            await build_demo(session, Path(tempfile.mkdtemp(prefix="blockgraph-render-")))
        for i, image in enumerate(args.images):
            from gui.planner.intents import AddImage

            fmt = _probe_format(image)
            plan = session.plan(AddImage(_node_name(image, i), os.path.abspath(image), fmt))
            if not plan.ok:
                raise ValueError("; ".join(str(r) for r in plan.refusals))
            await session.run_plan(plan)
        return await session.refresh(force=True)
    finally:
        await session.close()
        if bundled is not None:
            bundled.close()


def _is_libvirt(address: str) -> bool:
    scheme = address.partition(":")[0]
    return scheme in ("qemu", "test") or scheme.startswith(("qemu+", "test+"))


def _probe_format(path: str) -> str:
    from engine.formats import open_image

    img = open_image(path)
    try:
        return str(img.format)
    finally:
        img.close()


def _node_name(path: str, index: int) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(path).stem)
    if not stem or not stem[0].isalpha():
        stem = f"img{index}-{stem}".rstrip("-")
    return stem[:31]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blockgraph render", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--connect", metavar="ADDR", help="unix:PATH, tcp:HOST:PORT or a "
                        "libvirt URI (qemu:///system, qemu+ssh://HOST/system) with --domain")
    parser.add_argument("--domain", metavar="NAME", help="the libvirt domain to draw")
    source.add_argument("--demo", action="store_true", help="the demo chains on the bundled "
                        "engine")
    source.add_argument("images", nargs="*", default=[], metavar="IMAGE",
                        help="image files to open (with their backing chains)")
    parser.add_argument("-o", "--output", required=True,
                        help="FILE.svg|.png|.pdf|.dot|.json (laid out for the page's shape)")
    parser.add_argument("--dark", action="store_true", help="dark colours (SVG/PNG)")
    parser.add_argument("--permissions", action="store_true",
                        help="label edges with their permissions")
    args = parser.parse_args(argv)
    if not (args.connect or args.demo or args.images):
        parser.error("give --connect ADDR, --demo or IMAGE")
    args.libvirt_domain = None
    try:
        fmt = format_for(args.output)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        snapshot = asyncio.run(read_snapshot(args))
    except Exception as exc:  # every failure becomes one clear line, no traceback
        print(f"blockgraph render: {exc}", file=sys.stderr)
        return 1
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from gui.views.export import page_aspect
    from gui.views.palette import DARK, LIGHT
    from gui.views.scene import GraphScene

    app = QApplication.instance() or QApplication([])
    scene = GraphScene(DARK if args.dark else LIGHT)
    scene.aspect = page_aspect(fmt)
    scene.show_snapshot(snapshot)
    scene.set_show_permissions(args.permissions)
    try:
        if fmt == "json" and args.libvirt_domain is not None:
            from gui.libvirt.headless import disks_json

            data = to_json(scene.shown, scene.drawing())
            data["disks"] = disks_json(snapshot, args.libvirt_domain)
            Path(args.output).write_text(json.dumps(data, indent=2) + "\n")
            written = [Path(args.output)]
        else:
            written = export(scene, args.output)
    except OSError as exc:
        print(f"blockgraph render: {exc}", file=sys.stderr)
        return 1
    if len(written) > 1:
        print(f"blockgraph render: too big for one legible picture: {written[0]} is an "
              f"overview, {len(written) - 1} pages beside it "
              f"({written[1].name} … {written[-1].name})")
    del app
    return 0

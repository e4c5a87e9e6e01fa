"""``blockgraph render``: draw a graph to SVG, PNG, PDF, DOT or JSON without a window.

    blockgraph render --demo -o demo.svg
    blockgraph render --connect unix:/run/qsd.sock -o graph.png
    blockgraph render disk.qcow2 -o chain.json
    blockgraph render --connect unix:/run/qsd.sock -o host.pdf    # paged, legible

The same layers as the editor: a session (bundled engine or remote QEMU) reads the
graph, the layout places it, the scene draws it (:mod:`gui.views.export`). The format
follows the output's extension, the layout the shape of its page. A JSON file holds
the drawing as a fresh scene has it: each node's rectangle, each edge's line as drawn.
Qt is loaded only to draw SVG, PNG and PDF.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from engine.graph.snapshot import GraphSnapshot
from gui.executor import PlanExecutor
from gui.images.demo import build_demo
from gui.images.opening import add_image, node_name_for
from gui.session import Session
from gui.session.peers import BundledPeer, remote_endpoint
from gui.views.export import drawing_of, export, format_for, page_aspect, to_dot, to_json


async def read_snapshot(args: argparse.Namespace) -> GraphSnapshot:
    """Connect as the editor would, build the demo / open the images, return the graph."""
    if args.connect and _is_libvirt(args.connect):
        # the libvirt binding is optional: loaded only for a libvirt URI
        from gui.libvirt.headless import domain_from, read_domain

        snapshot, args.libvirt_domain = await read_domain(*domain_from(args.connect,
                                                                        args.domain))
        return snapshot
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
            await build_demo(session, Path(tempfile.mkdtemp(prefix="blockgraph-render-")))
        executor = PlanExecutor(session)
        for i, image in enumerate(args.images):
            plan = executor.plan(add_image(image, node_name_for(image, i)))
            if not plan.ok:
                raise ValueError("; ".join(str(r) for r in plan.refusals))
            await executor.run(plan)
        return await session.refresh(force=True)
    finally:
        await session.close()
        if bundled is not None:
            bundled.close()


def _is_libvirt(address: str) -> bool:
    scheme = address.partition(":")[0]
    return scheme in ("qemu", "test") or scheme.startswith(("qemu+", "test+"))


def _parser() -> argparse.ArgumentParser:
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
    return parser


def _draw(snapshot: GraphSnapshot, args: argparse.Namespace, fmt: str) -> list[Path]:
    """Draw ``snapshot`` on a scene laid out for the page and export it (SVG, PNG,
    PDF): Qt is loaded here, lazily, so that DOT and JSON are written without it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from gui.views.palette import DARK, LIGHT
    from gui.views.scene import GraphScene

    app = QApplication.instance() or QApplication([])
    scene = GraphScene(DARK if args.dark else LIGHT)
    scene.aspect = page_aspect(fmt)
    scene.show_snapshot(snapshot)
    scene.set_show_permissions(args.permissions)
    try:
        return export(scene, args.output)
    finally:
        del app


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
    if fmt in ("dot", "json"):
        drawing = drawing_of(snapshot, page_aspect(fmt))
        data = to_json(snapshot, drawing)
        if args.libvirt_domain is not None:
            from gui.libvirt.headless import disks_json  # libvirt, as above

            data["disks"] = disks_json(snapshot, args.libvirt_domain)
        text = (to_dot(snapshot, drawing.positions()) if fmt == "dot"
                else json.dumps(data, indent=2) + "\n")
        Path(args.output).write_text(text)
        return 0
    try:
        written = _draw(snapshot, args, fmt)
    except OSError as exc:
        print(f"blockgraph render: {exc}", file=sys.stderr)
        return 1
    if len(written) > 1:
        print(f"blockgraph render: too big for one legible picture: {written[0]} is an "
              f"overview, {len(written) - 1} pages beside it "
              f"({written[1].name} … {written[-1].name})")
    return 0

"""``blockgraph offline IMAGE…``: image files' backing chains, without QEMU or an engine.

Opens the offline window (:mod:`gui.offline.window`): the chains drawn as a
graph, broken links marked, fixes and offline edits in each image's context menu.
``--audit DIR|POOL`` prints which file belongs to which libvirt domain (:mod:`gui.commands.audit`).
``--check`` prints instead, per image: its layers (with the data each holds), every
link problem and the fixes offered as ``qemu-img`` commands; the exit status is 1 when
a chain is broken. (The editor's File → Inspect images on disk… opens the same window.)
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from engine.formats.errors import ImageError
from engine.offline import inspect_chain


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blockgraph offline",
                                description="Show image files' backing chains (no QEMU).")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--check", action="store_true",
                   help="print the chains and their problems instead of opening a window")
    return p


def check(paths: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    broken = False
    for path in paths:
        try:
            report = inspect_chain(path)
        except ImageError as exc:
            print(f"{path}: cannot open: {exc}", file=out)
            broken = True
            continue
        print(path, file=out)
        for depth, layer in enumerate(report.layers):
            link = f" -> {layer.backing_file}" if layer.backing_file else ""
            print(f"  [{depth}] {layer.name} ({layer.format}, {layer.virtual_size} bytes): "
                  f"{layer.data_bytes} bytes data, {layer.zero_bytes} bytes zero{link}",
                  file=out)
        for problem in report.problems:
            tag = "warning" if problem.continues else "BROKEN"
            print(f"  {tag}: {problem.message}", file=out)
            for fix in problem.fixes:
                print(f"    fix: {fix.label}: {fix.command}", file=out)
        broken = broken or report.broken is not None
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] == "--audit":
        from gui.commands.audit import main as audit_main  # a subcommand, only for --audit

        return audit_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.check:
        return check(args.images)
    from gui.offline.window import main as window_main  # Qt, only for the window

    return window_main(args.images)

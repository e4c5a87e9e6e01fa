"""``blockgraph tour``: list the guided tours, or run one without a window.

``blockgraph tour --list`` prints one tour a line, name first.
``blockgraph tour NAME --headless`` runs the tour end to end against a fresh bundled
engine on scratch images, printing every step with its QMP and the result; the exit
status is 1 if any step's outcome differs from what the tour says. ``--connect ADDRESS``
runs it against a QEMU or qemu-storage-daemon instead (it must see this machine's
temporary directory), which is how the tours' expected texts are checked against QEMU.
Without ``--headless`` a tour window opens (the tour panel beside the tour's graph).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from typing import TextIO

from gui.scripting.peer import PeerError, ScriptPeer, open_peer
from gui.session import SessionError
from gui.tours.model import TourError, find_tour, list_tours
from gui.tours.runner import StepResult, TourRunner


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blockgraph tour",
                                description="Guided tours of QMP block-graph operations.")
    p.add_argument("name", nargs="?", help="the tour to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the tours, one a line")
    p.add_argument("--headless", action="store_true",
                   help="run the tour end to end in the terminal")
    p.add_argument("--connect", metavar="unix:PATH|tcp:HOST:PORT",
                   help="run against this QMP peer instead of a fresh bundled engine")
    p.add_argument("--dir", metavar="DIR", help="read tours from DIR")
    return p


def print_result(result: StepResult, total: int, out: TextIO) -> None:
    step = result.step
    mark = "ok" if result.ok else "FAILED"
    print(f"[{result.index + 1}/{total}] {step.title}", file=out)
    for line in textwrap.wrap(step.explain, 88):
        print(f"    {line}", file=out)
    if result.sent is not None:
        print(f"  -> {json.dumps(result.sent)}", file=out)
        expected = "" if step.expect.ok else "  (expected)"
        if result.error is not None:
            print(f"  <- error {result.error_class}: {result.error}{expected}", file=out)
        else:
            print(f"  <- {json.dumps(result.returned)}", file=out)
    if result.waited:
        print(f"  .. job {step.wait.job if step.wait else ''} reached '{result.waited}'",
              file=out)
    if step.highlight:
        print(f"  highlight: {', '.join(step.highlight)}", file=out)
    for problem in result.problems:
        print(f"  !! {problem}", file=out)
    print(f"  {mark}", file=out)


async def run_headless(name: str, address: str | None = None, directory: str | None = None,
                       out: TextIO | None = None) -> int:
    out = out or sys.stdout
    tour = find_tour(name, directory)

    async def factory() -> ScriptPeer:
        return await open_peer(address)

    runner = TourRunner(tour, factory)
    print(f"Tour: {tour.name} — {tour.title}", file=out)
    for line in textwrap.wrap(tour.intro, 88):
        print(f"  {line}", file=out)
    try:
        await runner.start()
        print(f"Peer: {runner.peer.label if runner.peer else '?'}", file=out)
        print(f"Scratch images in {runner.directory}:", file=out)
        for line in runner.setup_lines:
            print(f"  {line}", file=out)
        failed = 0
        while not runner.finished:
            result = await runner.next()
            print_result(result, len(tour.steps), out)
            failed += not result.ok
    finally:
        await runner.close()
    total = len(tour.steps)
    if failed:
        print(f"{failed} of {total} steps did not go as the tour says", file=out)
        return 1
    print(f"All {total} steps went as the tour says", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.list:
            for tour in list_tours(args.dir):
                print(f"{tour.name}\t{tour.title}")
            return 0
        if not args.name:
            _parser().print_usage(sys.stderr)
            print("blockgraph tour: give a tour name, or --list", file=sys.stderr)
            return 2
        find_tour(args.name, args.dir)
    except TourError as exc:
        print(f"blockgraph tour: {exc}", file=sys.stderr)
        return 2
    if args.headless:
        try:
            return asyncio.run(run_headless(args.name, args.connect, args.dir))
        except (PeerError, SessionError, OSError) as exc:
            print(f"blockgraph tour: {exc}", file=sys.stderr)
            return 2
    from gui.tours.window import main as window_main  # Qt, only for the window

    return window_main(args.name)

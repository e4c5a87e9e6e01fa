"""``blockgraph replay SCRIPT``: run a recorded QMP script against any QMP endpoint.

The script is JSON lines (what the QMP log exports) or qmp-shell syntax; see
:mod:`gui.scripting.script` (the replay itself is :mod:`gui.scripting.replay`).
``--connect unix:PATH|tcp:HOST:PORT`` replays against a running QEMU or
qemu-storage-daemon (or ``blockgraph serve``); ``--engine`` (the default) against a
fresh bundled engine. Every command is printed with its result; the final graph is
printed (``--graph-out FILE`` also writes its name-independent signature as JSON).
Exit status: 0 when every step went as recorded, 1 when one did not, 2 when the script
cannot be read or the peer cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gui.scripting.peer import PeerError, open_peer
from gui.scripting.replay import StepReport, replay
from gui.scripting.script import ScriptCommand, ScriptError, load_script
from gui.scripting.signature import describe_signature, graph_signature
from gui.session import SessionError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blockgraph replay",
                                description="Replay a recorded QMP script.")
    p.add_argument("script", help="a .jsonl (QMP log export) or qmp-shell script")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--connect", metavar="unix:PATH|tcp:HOST:PORT",
                       help="the QMP endpoint to replay against")
    where.add_argument("--engine", action="store_true",
                       help="replay against a fresh bundled engine (the default)")
    p.add_argument("--keep-going", action="store_true",
                   help="go on after a step that does not go as recorded")
    p.add_argument("--graph-out", metavar="FILE",
                   help="write the final graph's signature (JSON) to FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    return p


def _printer(out: TextIO, quiet: bool) -> Callable[[StepReport], None]:
    def show(r: StepReport) -> None:
        if quiet and r.ok:
            return
        if isinstance(r.step, ScriptCommand):
            print(f"-> {r.step.qmp_shell()}", file=out)
            text = r.outcome if r.returned is None else f"{json.dumps(r.returned)}"
            print(f"<- {text}", file=out)
        else:
            print(f".. {r.outcome}", file=out)
        if r.problem:
            print(f"!! line {r.step.line}: {r.problem}", file=out)
    return show


async def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        script = load_script(args.script)
    except (OSError, ScriptError) as exc:
        print(f"blockgraph replay: {exc}", file=sys.stderr)
        return 2
    try:
        peer = await open_peer(args.connect)
    except (SessionError, PeerError, OSError, ValueError) as exc:
        text = str(exc) if str(exc).startswith("cannot connect") else f"cannot connect: {exc}"
        print(f"blockgraph replay: {text}", file=sys.stderr)
        return 2
    try:
        if not args.quiet:
            print(f"Replaying {len(script.steps)} steps from {args.script} on {peer.label}",
                  file=out)
        report = await replay(script, peer, keep_going=args.keep_going,
                              on_step=_printer(out, args.quiet))
    finally:
        await peer.close()
    assert report.snapshot is not None
    signature = graph_signature(report.snapshot)
    if not args.quiet:
        print("Final graph:", file=out)
        for line in describe_signature(signature):
            print(f"  {line}", file=out)
    if args.graph_out:
        Path(args.graph_out).write_text(json.dumps(signature, indent=1) + "\n")
    bad = [s for s in report.steps if not s.ok]
    if bad or report.stopped:
        print(f"{len(bad)} step(s) did not go as recorded"
              + (" (stopped)" if report.stopped else ""), file=out)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(run(args))

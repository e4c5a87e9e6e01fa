"""``blockgraph plan``: every gesture of the editor as a command.

    blockgraph plan --connect unix:/run/qsd.sock stream top
    blockgraph plan --connect unix:/run/qsd.sock --apply commit '#block258' --base base
    blockgraph plan --connect unix:/run/qsd.sock snapshot top --file /images/top-1.qcow2

The intent is planned on the peer's graph exactly as the editor plans a gesture, and
checked by the same preflight (QEMU's rules). The plan is printed as a qmp-shell script
(one command per line, comments for what it does and for the jobs to wait for) that
``blockgraph replay`` and qmp-shell both read. A plan preflight refuses prints QEMU's
error text on stderr and exits 2; ``--no-check`` prints it (or, with ``--apply``, sends
it) anyway, to see QEMU's own answer. ``--apply`` runs it, waits for its jobs, reads the
graph back and prints what changed as comments: exit 0, or 1 with QEMU's error (or when
the graph is not what the plan promised).

Nodes are named as QEMU reports them, auto-named ones too (quote ``#block258`` for the
shell); devices by their qdev id or QOM path, as ``query-block`` reports them. A
relative ``--file`` is made absolute here, since QEMU would resolve it against its own
working directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from engine.graph.names import check_node_name
from engine.graph.snapshot import GraphSnapshot
from gui.executor.targets import PlanTarget, QmpTarget, header
from gui.planner.intents import (
    ChangeMedium,
    CloseTray,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    InsertMedium,
    OpenTray,
    RemoveMedium,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.session import CommandFailed, JobFailed, PreflightRefused, SessionError

#: exit statuses
APPLIED, FAILED, REFUSED = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="blockgraph plan", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 planned (or applied), 1 failed or not as planned, "
               "2 refused by preflight (QEMU's text on stderr) or bad arguments.")
    p.add_argument("--connect", metavar="ADDR", required=True,
                   help="unix:PATH or tcp:HOST:PORT of QEMU, qemu-storage-daemon or "
                        "blockgraph serve")
    p.add_argument("--apply", action="store_true",
                   help="run the plan, wait for its jobs, print what changed")
    p.add_argument("--no-check", action="store_true",
                   help="skip preflight: print or send the plan even if QEMU will refuse it")
    intents = p.add_subparsers(dest="intent", metavar="INTENT", required=True)

    rebase = intents.add_parser("rebase", help="re-point NODE's backing link, or detach it")
    rebase.add_argument("node")
    where = rebase.add_mutually_exclusive_group(required=True)
    where.add_argument("--onto", metavar="NODE", help="the new backing node")
    where.add_argument("--detach", action="store_true", help="drop the backing link")

    snap = intents.add_parser("snapshot", help="a new qcow2 overlay on top of NODE")
    snap.add_argument("node")
    snap.add_argument("--file", required=True, metavar="PATH", help="the overlay to create")
    snap.add_argument("--node-name", metavar="NAME",
                      help="the overlay's node name (default: from the file name)")

    stream = intents.add_parser("stream", help="copy the data below NODE into it")
    stream.add_argument("node")
    stream.add_argument("--base", metavar="NODE",
                        help="stop above this node (default: the whole chain)")

    commit = intents.add_parser("commit", help="write TOP's data down into a base")
    commit.add_argument("top", help="the layer whose data moves down (an active layer "
                                    "is committed and completed)")
    commit.add_argument("--base", metavar="NODE", required=True)

    ro = intents.add_parser("read-only", help="make NODE read-only or read-write")
    ro.add_argument("node")
    ro.add_argument("state", choices=("on", "off"))

    delete = intents.add_parser("delete", help="close NODE (blockdev-del)")
    delete.add_argument("node")

    medium = intents.add_parser("change-medium", help="insert FILE into a removable DEVICE")
    medium.add_argument("device")
    medium.add_argument("file")
    medium.add_argument("--format", default="raw", metavar="FMT",
                        help="the image format (default: raw)")
    medium.add_argument("--read-only-mode", choices=("retain", "read-only", "read-write"))

    eject = intents.add_parser("eject", help="eject DEVICE's medium")
    eject.add_argument("device")
    eject.add_argument("--force", action="store_true",
                       help="also when the guest has locked the tray")

    opener = intents.add_parser("open-tray", help="open DEVICE's tray")
    opener.add_argument("device")
    opener.add_argument("--force", action="store_true",
                        help="also when the guest has locked the tray")
    intents.add_parser("close-tray", help="close DEVICE's tray").add_argument("device")
    intents.add_parser("remove-medium", help="take the medium out of DEVICE (tray open)"
                       ).add_argument("device")
    insert = intents.add_parser("insert-medium", help="put NODE into DEVICE (tray open)")
    insert.add_argument("device")
    insert.add_argument("node")
    return p


def overlay_name(filename: str, graph: GraphSnapshot) -> str:
    """A free, valid node name for an overlay, from its file's name."""
    stem = re.sub(r"[^A-Za-z0-9\-._]", "-", os.path.basename(filename).split(".")[0])
    if not stem or not stem[0].isalpha():
        stem = f"snap-{stem}".rstrip("-")
    stem = stem[:27]
    name, n = stem, 2
    while name in graph.nodes or check_node_name(name) is not None:
        name, n = f"{stem}-{n}", n + 1
    return name


def intent_from(args: argparse.Namespace, graph: GraphSnapshot) -> Any:
    """The planner's intent for the parsed command line."""
    match args.intent:
        case "rebase":
            return DetachBacking(args.node) if args.detach else SetBacking(args.node, args.onto)
        case "snapshot":
            filename = os.path.abspath(args.file)
            return ExternalSnapshot(args.node, args.node_name or overlay_name(filename, graph),
                                    filename)
        case "stream":
            return Stream(args.node, args.base)
        case "commit":
            return Commit(args.top, args.base)
        case "read-only":
            return SetReadOnly(args.node, args.state == "on")
        case "delete":
            return Delete(args.node)
        case "change-medium":
            return ChangeMedium(args.device, os.path.abspath(args.file), args.format,
                                args.read_only_mode)
        case "eject":
            return ChangeMedium(args.device, None, force=args.force)
        case "open-tray":
            return OpenTray(args.device, args.force)
        case "close-tray":
            return CloseTray(args.device)
        case "remove-medium":
            return RemoveMedium(args.device)
        case "insert-medium":
            return InsertMedium(args.device, args.node)
    raise ValueError(args.intent)


async def open_target(args: argparse.Namespace) -> PlanTarget:
    """The target the address names. QMP endpoints here; libvirt domains are another
    target (:mod:`gui.executor.targets`) not wired to this command yet."""
    scheme = args.connect.partition(":")[0]
    if scheme in ("qemu", "test") or scheme.startswith(("qemu+", "test+")):
        raise SessionError(f"{args.connect}: libvirt domains are not planned by this "
                           "command yet; connect to a QMP socket")
    return await QmpTarget.connect(args.connect)


async def run(args: argparse.Namespace, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        target = await open_target(args)
    except (SessionError, OSError, ValueError) as exc:
        print(f"blockgraph plan: cannot connect: {exc}", file=err)
        return FAILED
    try:
        return await _plan_and_apply(target, args, out, err)
    finally:
        await target.close()


async def _plan_and_apply(target: PlanTarget, args: argparse.Namespace, out: TextIO,
                          err: TextIO) -> int:
    check = not args.no_check
    graph = getattr(getattr(target, "session", None), "snapshot", None) or GraphSnapshot((), ())
    plan = await target.plan(intent_from(args, graph), check=check)
    if plan.refusals:
        for reason in plan.refusals:
            print(str(reason), file=err)
        return REFUSED
    _print_lines([*header(plan), target.script(plan)], out)
    if not args.apply:
        return APPLIED
    try:
        applied = await target.apply(plan, check=check)
    except PreflightRefused as exc:        # the graph changed since it was planned
        for reason in exc.reasons:
            print(str(reason), file=err)
        return REFUSED
    except CommandFailed as exc:
        print(exc.desc, file=err)
        return FAILED
    except JobFailed as exc:
        print(exc.error or str(exc), file=err)
        return FAILED
    except SessionError as exc:
        print(f"blockgraph plan: {exc}", file=err)
        return FAILED
    _print_lines(["# applied:", *(f"#   {c}" for c in applied.changes or ["nothing changed"])],
                 out)
    if applied.mismatches:
        for m in applied.mismatches:
            print(f"the graph is not as planned: {m}", file=err)
        return FAILED
    return APPLIED


def _print_lines(lines: Sequence[str], out: TextIO) -> None:
    for line in lines:
        print(line, file=out)
    out.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(run(args))

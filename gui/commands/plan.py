"""``blockgraph plan``: every gesture of the editor as a command.

    blockgraph plan --connect unix:/run/qsd.sock stream top
    blockgraph plan --connect unix:/run/qsd.sock --apply commit '#block258' --base base
    blockgraph plan --connect unix:/run/qsd.sock snapshot top --file /images/top-1.qcow2

The intent is planned on the peer's graph exactly as the editor plans a gesture, and
checked by the same preflight (QEMU's rules). Its consequences head it as comments, the
lines the editor's review shows: what each VM disk, export or top node reads afterwards
(layers that join or leave its chain, bytes read from other layers, counted from the
images' allocation on this machine), nodes QEMU frees, files written — with a warning
for each disk or export whose data changes under it. The plan is printed as a qmp-shell script
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

A libvirt domain is planned through libvirt's own APIs (:mod:`gui.libvirt.target`), so
that ``virsh domblklist`` and ``virsh snapshot-list`` show the result; the plan is
printed as virsh commands, and nodes and devices may also be named by libvirt's disk
targets (``vda``, ``vda[2]``, ``sda``):

    blockgraph plan --connect qemu:///system --domain vm1 --apply snapshot vda --file /vm/s1.qcow2
    blockgraph plan --connect qemu:///system --domain vm1 --apply commit vda --base 'vda[2]'

An edit libvirt has no API for is refused with the reason; ``--confirm-passthrough``
sends it through libvirt's QMP passthrough anyway, accepting that libvirt marks the
domain tainted and will not know of the change.
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
    # Over 60 lines: one add_argument per option, a table rather than logic.
    p = argparse.ArgumentParser(
        prog="blockgraph plan", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 planned (or applied), 1 failed or not as planned, "
               "2 refused by preflight (QEMU's text on stderr) or bad arguments.")
    p.add_argument("--connect", metavar="ADDR", required=True,
                   help="unix:PATH or tcp:HOST:PORT of QEMU, qemu-storage-daemon or "
                        "blockgraph serve; or a libvirt URI (qemu:///system, "
                        "qemu+ssh://HOST/system) with --domain")
    p.add_argument("--domain", metavar="NAME", help="the libvirt domain to edit")
    p.add_argument("--confirm-passthrough", action="store_true",
                   help="libvirt only: send an edit libvirt has no API for through QMP "
                        "passthrough; libvirt marks the domain tainted and will not know "
                        "of the change")
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

    copy = intents.add_parser("copy", help="libvirt: copy NODE's disk to FILE and switch "
                                           "the disk to it (virDomainBlockCopy)")
    copy.add_argument("node")
    copy.add_argument("--file", required=True, metavar="PATH", help="the copy to create")
    copy.add_argument("--format", default="qcow2", metavar="FMT")
    copy.add_argument("--shallow", action="store_true",
                      help="copy the active layer only; the copy keeps the backing chain")
    copy.add_argument("--no-pivot", action="store_true",
                      help="finish the copy but leave the disk on its old image")
    for name, what in (("abort-job", "cancel"), ("pivot-job", "complete (pivot)")):
        job = intents.add_parser(name, help=f"libvirt: {what} the block job on DISK or "
                                            "with id JOB (virDomainBlockJobAbort)")
        job.add_argument("job", metavar="JOB|DISK")
    return p


#: intents only libvirt domains have (libvirt's own jobs and copies)
LIBVIRT_INTENTS = ("copy", "abort-job", "pivot-job")


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
    if args.intent in LIBVIRT_INTENTS:
        return libvirt_intent_from(args)
    raise ValueError(args.intent)


def libvirt_intent_from(args: argparse.Namespace) -> Any:
    """The intents only a libvirt domain has. Their module loads the libvirt binding, so
    it is imported here, lazily: only for a libvirt URI (see :func:`misused_options`)."""
    from gui.libvirt.edits import AbortJob, BlockCopy, PivotJob

    match args.intent:
        case "copy":
            return BlockCopy(args.node, os.path.abspath(args.file), args.format,
                             shallow=args.shallow, pivot=not args.no_pivot)
        case "abort-job":
            return AbortJob(args.job)
        case "pivot-job":
            return PivotJob(args.job)
    raise ValueError(args.intent)


def is_libvirt(address: str) -> bool:
    scheme = address.partition(":")[0]
    return scheme in ("qemu", "test") or scheme.startswith(("qemu+", "test+"))


async def open_target(args: argparse.Namespace) -> PlanTarget:
    """The target the address names: a QMP endpoint, or a libvirt domain."""
    if is_libvirt(args.connect):
        # the libvirt binding is optional: loaded only for a libvirt URI
        from gui.libvirt.headless import domain_from
        from gui.libvirt.target import LibvirtTarget

        return await LibvirtTarget.connect(*domain_from(args.connect, args.domain),
                                           passthrough=args.confirm_passthrough)
    return await QmpTarget.connect(args.connect)


def misused_options(args: argparse.Namespace) -> str | None:
    """What is wrong with the options for the kind of peer, or None."""
    if is_libvirt(args.connect):
        if args.no_check:
            return ("--no-check is for QMP peers: a libvirt domain is edited through "
                    "libvirt's APIs, and its plans are always checked")
    elif args.domain or args.confirm_passthrough:
        return "--domain and --confirm-passthrough are for libvirt URIs (qemu:///system)"
    elif args.intent in LIBVIRT_INTENTS:
        return (f"{args.intent} is an edit of a libvirt domain (virDomainBlockCopy, "
                "virDomainBlockJobAbort): connect to a libvirt URI with --domain")
    return None


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
        if getattr(plan, "passthrough_possible", False):
            print("blockgraph plan: --confirm-passthrough sends it anyway; libvirt then marks "
                  "the domain tainted and will not know of the change", file=err)
        return REFUSED
    effects, warnings = await target.consequences(plan)
    _print_lines([*header(plan), *(f"# warning: {w}" for w in warnings), "# consequences:",
                  *(f"#   {line}" for line in effects), target.script(plan)], out)
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
    parser = _parser()
    args = parser.parse_args(argv)
    if (problem := misused_options(args)) is not None:
        parser.error(problem)
    return asyncio.run(run(args))

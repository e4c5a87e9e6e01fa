"""``drive-mirror`` and ``blockdev-mirror``: their arguments, QEMU 7.2's checks in its order
(:mod:`engine.graph.rules.mirror`), the target ``drive-mirror`` creates and opens
(:mod:`engine.jobs.mirror_target`), then the job (:mod:`engine.jobs.mirror`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.formats.backing_names import strip_file_protocol
from engine.formats.hostfile import HostFile
from engine.graph import rules
from engine.graph.nodes import virtual_size
from engine.jobs.mirror import LEAVE_BACKING, OPEN_BACKING, SOURCE_BACKING, start_mirror
from engine.jobs.mirror_target import open_target, target_backing
from engine.jobs.snapshots import create_image
from engine.qmp.commands_jobs import ON_ERROR
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Enum, Int, Str, Struct, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

SYNC = Enum("MirrorSyncMode", list(rules.mirror.SYNC_MODES))
COPY_MODE = Enum("MirrorCopyMode", ["background", "write-blocking"])
NEW_IMAGE_MODE = Enum("NewImageMode", ["existing", "absolute-paths"])

_COMMON = {
    "*job-id": Str(), "device": Str(), "target": Str(), "*replaces": Str(), "sync": SYNC,
    "*speed": Int(), "*granularity": Int(non_negative=True), "*buf-size": Int(),
    "*on-source-error": ON_ERROR, "*on-target-error": ON_ERROR, "*copy-mode": COPY_MODE,
    "*auto-finalize": Bool(), "*auto-dismiss": Bool(),
}

DRIVE_MIRROR = Struct("DriveMirror", members({
    **_COMMON, "*format": Str(), "*node-name": Str(), "*mode": NEW_IMAGE_MODE,
    "*unmap": Bool(),
}))

BLOCKDEV_MIRROR = Struct("blockdev-mirror", members({
    **_COMMON, "*filter-node-name": Str(),
}))


@command("drive-mirror", DRIVE_MIRROR)
def drive_mirror(engine: Engine, args: dict[str, Any]) -> Any:
    """Create (``absolute-paths``) or open (``existing``) the target, then mirror to it."""
    graph = engine.graph
    source_key = rules.check_drive_mirror_source(graph, args["device"],
                                                 replaces=args.get("replaces"),
                                                 node_name=args.get("node-name"))
    source = graph.nodes[source_key]
    mode = args.get("mode", "absolute-paths")
    fmt = args.get("format") or (None if mode == "existing" else source.driver)
    sync = rules.effective_sync(graph, source_key, args["sync"])
    backing = target_backing(graph, source, sync)
    opened: dict[str, HostFile] = {}
    if mode != "existing":
        with_backing = None if sync == "full" or backing is None else backing
        store = create_image(graph, args["target"], fmt or source.driver, virtual_size(source),
                              with_backing)
        opened[strip_file_protocol(args["target"]) or args["target"]] = store
    try:
        with graph.transaction(restore_names=False):
            target = open_target(graph, args["target"], fmt, args.get("node-name"), opened)
            plan = rules.plan_mirror(
                graph, source_key, target.name, sync, replaces=args.get("replaces"),
                granularity=args.get("granularity", 0), buf_size=args.get("buf-size", 0),
                job_id=args.get("job-id"))
            start_mirror(engine, plan, args,
                         backing_mode=SOURCE_BACKING if mode != "existing" else OPEN_BACKING,
                         zero_target=sync == "full" and mode == "existing")
    finally:
        for leftover in opened.values():     # not taken by the target node (it failed)
            leftover.close()
    return {}


@command("blockdev-mirror", BLOCKDEV_MIRROR)
def blockdev_mirror(engine: Engine, args: dict[str, Any]) -> Any:
    """Mirror a root node to a node that exists."""
    graph = engine.graph
    source = rules.root_source(graph, args["device"])
    target = rules.lookup_bs(graph, args["target"], args["target"])
    plan = rules.plan_mirror(
        graph, source, target, args["sync"], replaces=args.get("replaces"),
        granularity=args.get("granularity", 0), buf_size=args.get("buf-size", 0),
        job_id=args.get("job-id"))
    start_mirror(engine, plan, args, backing_mode=LEAVE_BACKING,
                 zero_target=plan.sync == "full")
    return {}

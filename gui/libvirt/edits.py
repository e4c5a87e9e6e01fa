"""Edits of a libvirt domain as libvirt API calls: a pure function from (graph, domain XML,
intent) to a :class:`LibvirtPlan`. No I/O; :mod:`gui.libvirt.editor` runs the plans.

Changes made through QMP behind libvirt's back leave libvirt's view wrong (its domain
XML, ``virsh domblklist``, its next block job), so every edit libvirt has an API for
goes through that API:

=====================  ==============================================  ====================
intent                 libvirt                                         virsh
=====================  ==============================================  ====================
ExternalSnapshot       ``virDomainSnapshotCreateXML`` (disk-only)      ``snapshot-create-as``
Stream                 ``virDomainBlockRebase`` / ``virDomainBlockPull``  ``blockpull``
Commit                 ``virDomainBlockCommit`` (+ pivot if active)    ``blockcommit``
ChangeMedium           ``virDomainUpdateDeviceFlags`` (the CD-ROM)     ``change-media``
BlockCopy              ``virDomainBlockCopy`` (+ pivot)                ``blockcopy``
AbortJob / PivotJob    ``virDomainBlockJobAbort``                      ``blockjob``
=====================  ==============================================  ====================

libvirt names layers by disk target and index (``vda``, ``vda[3]``), not by node-name:
:func:`locate` maps the graph's nodes to the disks of the live XML (the backend's device
id is the disk's alias; layers are matched by file name). Its API is narrower than QMP's,
and a plan says so instead of sending something else: a snapshot or a stream only of a
disk's active layer, a commit only within one disk's chain.

Edits libvirt has no API for (a backing change by reopen, read-only, deleting or adding
nodes) are refused with the reason (:class:`~gui.libvirt.errors.NoLibvirtApi`); with
``allow_passthrough`` they are planned as the ordinary QMP plan, sent through
passthrough only after the user accepted :data:`PASSTHROUGH_WARNING`. Nodes libvirt
owns are never deleted that way.

After a plan ran, :meth:`LibvirtPlan.mismatches` checks its promise twice: against
libvirt's view (the live XML: what ``virsh domblklist`` shows) and against QEMU's graph.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import libvirt

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import ChainLayer, DomainDescription, DomainDisk
from gui.libvirt.errors import NoLibvirtApi, NotLibvirtShaped
from gui.planner import PlanContext, check_intent, plan_intent
from gui.planner import describe as planner_describe
from gui.planner.intents import (
    AddImage,
    ChangeMedium,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.plan import Expectation, Plan

PASSTHROUGH_WARNING = (
    "libvirt has no API for this edit. Sent through QMP passthrough, it changes the VM "
    "behind libvirt's back: libvirt marks the domain tainted and will not know of the "
    "change — its domain XML, virsh domblklist and its next block job keep the old "
    "graph, and a restart of the VM starts from the XML, not from this graph.")


# -- intents only a libvirt domain has (jobs it runs, and copies) -------------------------
@dataclass(frozen=True, slots=True)
class BlockCopy:
    """Copy ``node``'s disk (its whole chain, or only the top with ``shallow``) to a new
    ``filename``; with ``pivot`` the disk then uses the copy."""

    node: str
    filename: str
    format: str = "qcow2"
    shallow: bool = False
    pivot: bool = True


@dataclass(frozen=True, slots=True)
class AbortJob:
    """Cancel block job ``job`` (a ready copy or active commit leaves the disk as it was)."""

    job: str


@dataclass(frozen=True, slots=True)
class PivotJob:
    """Complete ready job ``job``: the disk switches to the commit's base or the copy."""

    job: str


# -- plan steps -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LibvirtCall:
    """One call of a ``virDomain`` method; ``virsh`` is the same as a virsh command."""

    api: str
    method: str
    args: tuple[Any, ...]
    virsh: str

    def as_dict(self) -> dict[str, Any]:
        return {"libvirt": self.api, "arguments": list(self.args)}


@dataclass(frozen=True, slots=True)
class WaitBlockJob:
    """Wait for libvirt's block-job event on ``disk`` with a status in ``until``."""

    disk: str
    until: tuple[str, ...] = ("completed",)

    @property
    def virsh(self) -> str:
        return f"# wait for the block job on {self.disk} to become {'/'.join(self.until)}"


@dataclass(frozen=True, slots=True)
class ChainFact:
    """After the plan, ``disk``'s chain is ``paths`` (top first) — in libvirt's XML and in
    QEMU's graph alike."""

    disk: str
    paths: tuple[str, ...]


Step = LibvirtCall | WaitBlockJob


@dataclass(frozen=True, slots=True)
class LibvirtPlan:
    """A planned edit of a libvirt domain. ``refusals`` non-empty: do not run.

    ``passthrough`` is the QMP plan sent through libvirt's passthrough for an edit
    libvirt has no API for; it runs only once the user accepted ``confirmation``.
    """

    intent: Any
    domain: str
    summary: str
    steps: tuple[Step, ...] = ()
    chains: tuple[ChainFact, ...] = ()
    refusals: tuple[Exception, ...] = ()
    warnings: tuple[str, ...] = ()
    irreversible: str | None = None
    passthrough: Plan | None = None
    confirmation: str | None = None
    inverse: None = None

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def reversible(self) -> bool:
        return False

    @property
    def passthrough_possible(self) -> bool:
        return any(isinstance(r, NoLibvirtApi) and r.passthrough for r in self.refusals)

    @property
    def expected(self) -> Expectation:
        return self.passthrough.expected if self.passthrough is not None else Expectation()

    def calls(self) -> list[LibvirtCall]:
        return [s for s in self.steps if isinstance(s, LibvirtCall)]

    def as_virsh(self) -> str:
        """The plan as virsh commands (waits as comments); QMP passthrough as
        ``qemu-monitor-command`` lines."""
        if self.passthrough is not None:
            return "\n".join(f"virsh qemu-monitor-command {self.domain} "
                             f"'{json.dumps(c.message())}'" for c in self.passthrough.commands())
        return "\n".join(s.virsh for s in self.steps)

    def as_json(self) -> str:
        """One libvirt call per line (or the QMP of a passthrough plan)."""
        if self.passthrough is not None:
            return self.passthrough.as_json()
        return "\n".join(json.dumps(c.as_dict()) for c in self.calls())

    def mismatches(self, graph: GraphSnapshot, description: DomainDescription) -> list[str]:
        """Every promised chain that libvirt's XML or QEMU's graph contradicts."""
        out: list[str] = []
        for fact in self.chains:
            disk = description.disk(fact.disk)
            xml_paths = tuple(layer.path for layer in disk.chain) if disk else ()
            if xml_paths != fact.paths:
                out.append(f"libvirt shows {fact.disk} as {_chain_text(xml_paths)}, "
                           f"expected {_chain_text(fact.paths)}")
            qemu_paths = tuple(disk_chain_paths(graph, disk)) if disk else ()
            if qemu_paths != fact.paths:
                out.append(f"QEMU's graph has {fact.disk} as {_chain_text(qemu_paths)}, "
                           f"expected {_chain_text(fact.paths)}")
        if self.passthrough is not None:
            out.extend(self.passthrough.expected.mismatches(graph))
        return out


def _chain_text(paths: Sequence[str]) -> str:
    return " <- ".join(os.path.basename(p) for p in paths) or "empty"


# -- where nodes are: disks, layers ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Place:
    """Where a graph node sits in libvirt's terms."""

    disk: DomainDisk
    layer: ChainLayer
    depth: int          # 0: the active layer

    @property
    def name(self) -> str:
        return self.disk.index_name(self.layer)


def backend_alias(key: str) -> str:
    """The device id of a backend key: ``backend:sata0-0-0`` -> ``sata0-0-0``,
    ``backend:/machine/peripheral/virtio-disk0/virtio-backend`` -> ``virtio-disk0``."""
    name = key.removeprefix("backend:")
    if name.startswith("/machine/peripheral/"):
        return name.removeprefix("/machine/peripheral/").split("/", 1)[0]
    return name


def image_path(graph: GraphSnapshot, key: str) -> str:
    """The file a format node reads: its protocol child's name (a ``json:`` name of the
    format node itself says less)."""
    file_child = graph.child(key, "file")
    if file_child is not None and graph.nodes[file_child].filename:
        return graph.nodes[file_child].filename
    return graph.nodes[key].filename


def disk_root(graph: GraphSnapshot, disk: DomainDisk) -> str | None:
    """The node the disk's device uses (the backend's root child), or None."""
    for key, node in graph.nodes.items():
        if node.kind == "block-backend" and disk.alias and backend_alias(key) == disk.alias:
            return graph.child(key, "root")
    return None


def disk_chain_nodes(graph: GraphSnapshot, disk: DomainDisk) -> list[str]:
    """The format nodes of the disk's chain in QEMU's graph, top first (filters skipped)."""
    out: list[str] = []
    key = disk_root(graph, disk)
    seen: set[str] = set()
    while key is not None and key not in seen:
        seen.add(key)
        node = graph.nodes[key]
        if graph.child(key, "backing") is None and node.driver in (
                "copy-on-read", "throttle", "mirror_top", "commit_top", "blkdebug"):
            key = graph.child(key, "file")           # a filter: pass through to its child
            continue
        out.append(key)
        key = graph.backing(key)
    return out


def disk_chain_paths(graph: GraphSnapshot, disk: DomainDisk) -> list[str]:
    return [image_path(graph, k) for k in disk_chain_nodes(graph, disk)]


def locate(graph: GraphSnapshot, description: DomainDescription) -> dict[str, Place]:
    """Graph node key -> its disk and layer, for every layer of every disk."""
    out: dict[str, Place] = {}
    for disk in description.disks:
        layers = {os.path.realpath(layer.path): layer for layer in disk.chain if layer.local}
        for depth, key in enumerate(disk_chain_nodes(graph, disk)):
            layer = layers.get(os.path.realpath(image_path(graph, key)))
            if layer is None and depth < len(disk.chain):
                layer = disk.chain[depth]
            if layer is not None:
                out[key] = Place(disk, layer, depth)
    return out


def resolve_name(graph: GraphSnapshot, description: DomainDescription, name: str) -> str:
    """A node key for ``name``: a node-name, or a disk target as virsh users know it —
    ``vda`` (its active layer) or ``vda[3]`` (a layer by libvirt's index)."""
    if name in graph.nodes:
        return name
    places = locate(graph, description)
    for key, place in places.items():
        if (name == place.disk.target and place.depth == 0) or name == place.name:
            return key
    raise rules.ReferenceNotFound(name)


def _job_disk(graph: GraphSnapshot, places: Mapping[str, Place], job: str) -> DomainDisk:
    key = job if job.startswith("job:") else f"job:{job}"
    if key not in graph.nodes:
        raise rules.RuleViolation(f"Block job '{job}' not found")
    for e in graph.children(key):
        if e.child in places:
            return places[e.child].disk
    raise NotLibvirtShaped(f"block job {job} runs on no disk of this domain: libvirt "
                           "cannot address it")


# -- planning --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EditContext:
    """Everything a libvirt plan depends on."""

    domain: str
    description: DomainDescription
    plan_context: PlanContext

    @property
    def graph(self) -> GraphSnapshot:
        return self.plan_context.snapshot


def plan_edit(ctx: EditContext, intent: Any, *, allow_passthrough: bool = False) -> LibvirtPlan:
    """Plan ``intent`` as libvirt calls; refused plans carry typed reasons and no steps."""
    builder = _BUILDERS.get(type(intent))
    try:
        if builder is None:
            return _plan_passthrough(ctx, intent, allow_passthrough)
        return builder(ctx, intent)
    except (rules.RuleViolation, NotLibvirtShaped, NoLibvirtApi) as exc:
        return LibvirtPlan(intent, ctx.domain, describe(intent, ctx.graph), refusals=(exc,),
                           irreversible="refused")


def describe(intent: Any, graph: GraphSnapshot | None = None) -> str:
    """The one-line summary (the planner's, for the intents it knows)."""
    match intent:
        case BlockCopy(node, filename):
            return f"Copy the disk of {node} to {filename}"
        case AbortJob(job):
            return f"Cancel block job {job}"
        case PivotJob(job):
            return f"Complete block job {job} (pivot)"
    return planner_describe(graph if graph is not None else GraphSnapshot((), ()), intent)


def _place(ctx: EditContext, node: str, what: str) -> Place:
    if node not in ctx.graph.nodes:
        raise rules.ReferenceNotFound(node)
    place = locate(ctx.graph, ctx.description).get(node)
    if place is None:
        raise NotLibvirtShaped(f"{node} is in no disk's chain of {ctx.domain}: libvirt can "
                               f"{what} only the images of its disks")
    return place


def _rule_check(ctx: EditContext, intent: Any) -> None:
    reasons = check_intent(ctx.plan_context, intent)
    if reasons:
        raise reasons[0]


def _plan_snapshot(ctx: EditContext, intent: ExternalSnapshot) -> LibvirtPlan:
    rules.check_snapshot_node(ctx.graph, intent.node)
    place = _place(ctx, intent.node, "snapshot")
    disk = place.disk
    if place.depth != 0:
        raise NotLibvirtShaped(f"libvirt snapshots a disk's active layer only: {intent.node} "
                               f"is layer {place.name} below {disk.target}'s top")
    target = os.path.abspath(intent.filename)
    specs = [f"<disk name={quoteattr(disk.target)} snapshot='external' type='file'>"
             f"<driver type='qcow2'/><source file={quoteattr(target)}/></disk>"]
    virsh_specs = [f"--diskspec {disk.target},snapshot=external,file={target}"]
    for other in ctx.description.disks:
        if other.target != disk.target:
            specs.append(f"<disk name={quoteattr(other.target)} snapshot='no'/>")
            virsh_specs.append(f"--diskspec {other.target},snapshot=no")
    xml = (f"<domainsnapshot><name>{_xml_text(intent.overlay)}</name>"
           f"<description>blockgraph: snapshot of {_xml_text(disk.target)}</description>"
           f"<disks>{''.join(specs)}</disks></domainsnapshot>")
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
    warnings = [f"libvirt names the new nodes itself; '{intent.overlay}' names the snapshot "
                f"(virsh snapshot-list {ctx.domain})"]
    if intent.cluster_size:
        warnings.append("libvirt creates the overlay with qcow2's default cluster size")
    call = LibvirtCall("virDomainSnapshotCreateXML", "snapshotCreateXML", (xml, flags),
                       f"virsh snapshot-create-as {ctx.domain} {intent.overlay} --disk-only "
                       f"--atomic {' '.join(virsh_specs)}")
    chain = (target, *(layer.path for layer in disk.chain))
    return LibvirtPlan(intent, ctx.domain, f"Snapshot {disk.target} into {target}",
                       steps=(call,), chains=(ChainFact(disk.target, chain),),
                       warnings=tuple(warnings),
                       irreversible=f"{disk.target} now writes to {os.path.basename(target)}; "
                                    "libvirt has no API to drop an external overlay (commit it)")


def _plan_stream(ctx: EditContext, intent: Stream) -> LibvirtPlan:
    place = _place(ctx, intent.node, "stream into")
    disk = place.disk
    if place.depth != 0:
        raise NotLibvirtShaped(f"libvirt streams into a disk's active layer only "
                               f"(virDomainBlockRebase): {intent.node} is {place.name}")
    _rule_check(ctx, Stream(intent.node, intent.base))
    base = _place(ctx, intent.base, "stream from") if intent.base is not None else None
    if base is not None and base.disk.target != disk.target:
        raise NotLibvirtShaped(f"{intent.base} is not in {disk.target}'s chain")
    if base is None:
        call = LibvirtCall("virDomainBlockPull", "blockPull", (disk.target, 0, 0),
                           f"virsh blockpull {ctx.domain} {disk.target} --wait")
        chain: tuple[str, ...] = (disk.chain[0].path,)
    else:
        call = LibvirtCall("virDomainBlockRebase", "blockRebase",
                           (disk.target, base.name, 0, 0),
                           f"virsh blockpull {ctx.domain} {disk.target} --base {base.name} "
                           "--wait")
        chain = (disk.chain[0].path, *(layer.path for layer in disk.chain[base.depth:]))
    dropped = [layer.path for layer in disk.chain[1:(base.depth if base else None)]]
    summary = describe(intent, ctx.graph).replace(intent.node, disk.target)
    return LibvirtPlan(intent, ctx.domain, summary,
                       steps=(call, WaitBlockJob(disk.target)),
                       chains=(ChainFact(disk.target, chain),),
                       irreversible=f"the data of {', '.join(map(os.path.basename, dropped))} "
                                    f"is copied into {os.path.basename(disk.chain[0].path)}")


def _plan_commit(ctx: EditContext, intent: Commit) -> LibvirtPlan:
    top = _place(ctx, intent.top, "commit")
    disk = top.disk
    _rule_check(ctx, Commit(intent.top, intent.base))
    base = _place(ctx, intent.base, "commit into") if intent.base is not None else None
    if base is not None and base.disk.target != disk.target:
        raise NotLibvirtShaped(f"{intent.base} is not in {disk.target}'s chain")
    base_depth = base.depth if base is not None else len(disk.chain) - 1
    base_name = base.name if base is not None else None
    base_opt = f" --base {base_name}" if base_name else ""
    chain = (*(layer.path for layer in disk.chain[:top.depth]),
             *(layer.path for layer in disk.chain[base_depth:]))
    steps: tuple[Step, ...]
    if top.depth == 0:
        steps = (LibvirtCall("virDomainBlockCommit", "blockCommit",
                             (disk.target, base_name, None, 0,
                              libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE),
                             f"virsh blockcommit {ctx.domain} {disk.target} --active{base_opt} "
                             "--pivot --wait"),
                 WaitBlockJob(disk.target, ("ready",)),
                 LibvirtCall("virDomainBlockJobAbort", "blockJobAbort",
                             (disk.target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT),
                             "# (the pivot of --pivot)"),
                 WaitBlockJob(disk.target))
        kind = "active commit"
    else:
        steps = (LibvirtCall("virDomainBlockCommit", "blockCommit",
                             (disk.target, base_name, top.name, 0, 0),
                             f"virsh blockcommit {ctx.domain} {disk.target} --top {top.name}"
                             f"{base_opt} --wait"),
                 WaitBlockJob(disk.target))
        kind = "commit"
    committed = [layer.path for layer in disk.chain[top.depth:base_depth]]
    return LibvirtPlan(intent, ctx.domain,
                       f"Commit {top.name} into {base_name or 'the bottom of ' + disk.target}"
                       f" ({kind})",
                       steps=steps, chains=(ChainFact(disk.target, chain),),
                       irreversible=f"the data of {', '.join(map(os.path.basename, committed))}"
                                    f" is written into "
                                    f"{os.path.basename(disk.chain[base_depth].path)}")


def _removable(ctx: EditContext, device: str) -> DomainDisk:
    for disk in ctx.description.disks:
        if device in (disk.target, disk.alias):
            if not disk.removable:
                raise NotLibvirtShaped(f"{disk.target} is a {disk.device}, not a removable "
                                       "drive (cdrom, floppy)")
            return disk
    raise rules.DeviceNotFound(device)


def _plan_medium(ctx: EditContext, intent: ChangeMedium) -> LibvirtPlan:
    disk = _removable(ctx, intent.device.removeprefix("backend:"))
    source = ""
    if intent.filename is not None:
        source = f"<source file={quoteattr(os.path.abspath(intent.filename))}/>"
    xml = (f"<disk type='file' device={quoteattr(disk.device)}>"
           f"<driver name='qemu' type={quoteattr(intent.format)}/>{source}"
           f"<target dev={quoteattr(disk.target)} bus={quoteattr(disk.bus)}/>"
           f"{'<readonly/>' if disk.read_only else ''}</disk>")
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    if intent.force:
        flags |= libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE
    what = (f"{os.path.abspath(intent.filename)} --update" if intent.filename is not None
            else "--eject")
    call = LibvirtCall("virDomainUpdateDeviceFlags", "updateDeviceFlags", (xml, flags),
                       f"virsh change-media {ctx.domain} {disk.target} {what} --live"
                       + (" --force" if intent.force else ""))
    chain = (os.path.abspath(intent.filename),) if intent.filename is not None else ()
    summary = (f"Insert {intent.filename} into {disk.target}" if intent.filename is not None
               else f"Eject the medium of {disk.target}")
    return LibvirtPlan(intent, ctx.domain, summary, steps=(call,),
                       chains=(ChainFact(disk.target, chain),))


def _plan_copy(ctx: EditContext, intent: BlockCopy) -> LibvirtPlan:
    place = _place(ctx, intent.node, "copy")
    disk = place.disk
    if place.depth != 0:
        raise NotLibvirtShaped(f"libvirt copies a disk from its active layer: {intent.node} "
                               f"is {place.name}")
    target = os.path.abspath(intent.filename)
    xml = (f"<disk type='file'><source file={quoteattr(target)}/>"
           f"<driver type={quoteattr(intent.format)}/></disk>")
    flags = libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
    if intent.shallow:
        flags |= libvirt.VIR_DOMAIN_BLOCK_COPY_SHALLOW
    opts = f"--format {intent.format}" + (" --shallow" if intent.shallow else "")
    steps: list[Step] = [
        LibvirtCall("virDomainBlockCopy", "blockCopy", (disk.target, xml, {}, flags),
                    f"virsh blockcopy {ctx.domain} {disk.target} {target} {opts} "
                    f"--transient-job --wait{' --pivot' if intent.pivot else ' --finish'}"),
        WaitBlockJob(disk.target, ("ready",)),
    ]
    abort_flags = libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT if intent.pivot else 0
    steps += [LibvirtCall("virDomainBlockJobAbort", "blockJobAbort", (disk.target, abort_flags),
                          f"# (the {'pivot' if intent.pivot else 'finish'} of the copy)"),
              WaitBlockJob(disk.target, ("completed", "canceled"))]
    if intent.pivot:
        chain = (target, *(layer.path for layer in disk.chain[1:])) if intent.shallow \
            else (target,)
    else:
        chain = tuple(layer.path for layer in disk.chain)
    return LibvirtPlan(intent, ctx.domain, describe(intent), steps=tuple(steps),
                       chains=(ChainFact(disk.target, chain),),
                       irreversible=None if not intent.pivot else
                       f"{disk.target} now uses {os.path.basename(target)}")


def _plan_job(ctx: EditContext, intent: AbortJob | PivotJob) -> LibvirtPlan:
    places = locate(ctx.graph, ctx.description)
    disk = _job_disk(ctx.graph, places, intent.job)
    if isinstance(intent, PivotJob):
        call = LibvirtCall("virDomainBlockJobAbort", "blockJobAbort",
                           (disk.target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT),
                           f"virsh blockjob {ctx.domain} {disk.target} --pivot")
        until: tuple[str, ...] = ("completed",)
    else:
        call = LibvirtCall("virDomainBlockJobAbort", "blockJobAbort", (disk.target, 0),
                           f"virsh blockjob {ctx.domain} {disk.target} --abort")
        until = ("canceled", "completed")
    return LibvirtPlan(intent, ctx.domain, describe(intent) + f" on {disk.target}",
                       steps=(call, WaitBlockJob(disk.target, until)))


def _plan_passthrough(ctx: EditContext, intent: Any, allow: bool) -> LibvirtPlan:
    if not isinstance(intent, SetBacking | DetachBacking | SetReadOnly | Delete | AddImage):
        raise TypeError(f"not an intent: {intent!r}")
    if isinstance(intent, Delete):
        place = locate(ctx.graph, ctx.description).get(intent.node)
        if place is not None:
            raise NoLibvirtApi(f"libvirt owns {intent.node} ({place.name} of "
                               f"{ctx.domain}): deleting it behind libvirt's back would break "
                               "the disk; remove it with a commit or a stream instead",
                               passthrough=False)
    what = {SetBacking: "a backing change by reopen", DetachBacking: "detaching a backing "
            "link", SetReadOnly: "changing a node's read-only flag", Delete: "deleting a node",
            AddImage: "opening an image as a node without a device"}[type(intent)]
    plan = plan_intent(ctx.plan_context, intent)
    if not plan.ok:
        raise plan.refusals[0]
    if not allow:
        raise NoLibvirtApi(f"libvirt has no API for {what}; it can be sent through QMP "
                           "passthrough once you confirm that libvirt will not know of it",
                           passthrough=True)
    return LibvirtPlan(intent, ctx.domain, plan.summary + " (QMP passthrough)",
                       passthrough=plan, confirmation=PASSTHROUGH_WARNING,
                       warnings=plan.warnings,
                       irreversible=plan.irreversible or "libvirt cannot undo what it does "
                                                         "not know of")


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_BUILDERS: dict[type, Any] = {
    ExternalSnapshot: _plan_snapshot,
    Stream: _plan_stream,
    Commit: _plan_commit,
    ChangeMedium: _plan_medium,
    BlockCopy: _plan_copy,
    AbortJob: _plan_job,
    PivotJob: _plan_job,
}

__all__ = ["PASSTHROUGH_WARNING", "AbortJob", "BlockCopy", "ChainFact", "EditContext",
           "LibvirtCall", "LibvirtPlan", "PivotJob", "Place", "WaitBlockJob", "describe",
           "locate", "plan_edit", "resolve_name"]

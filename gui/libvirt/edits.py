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

import os
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import libvirt

from engine.graph import rules
from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import DomainDescription, DomainDisk
from gui.libvirt.errors import NoLibvirtApi, NotLibvirtShaped
from gui.libvirt.places import (
    Place,
    disk_chain_nodes,
    disk_root,
    job_disk,
    locate,
    resolve_name,
)
from gui.libvirt.plan import ChainFact, LibvirtCall, LibvirtPlan, Step, WaitBlockJob
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
    disk = job_disk(ctx.graph, places, intent.job)
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
           "disk_chain_nodes", "disk_root", "locate", "plan_edit", "resolve_name"]

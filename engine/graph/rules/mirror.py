"""QEMU 7.2's checks before it starts a mirror job (``drive-mirror``, ``blockdev-mirror``).

:func:`plan_mirror` makes, in QEMU's order, the checks both commands share once the
target node exists (QEMU's blockdev_mirror_common and mirror_start_job up to the
filter insertion) and returns what the job works on. ``drive-mirror`` makes two
checks of its own before it creates the target (:func:`check_drive_mirror_source`).
The engine starts its job from the plan; the editor's preflight calls the same
functions on a snapshot of a remote QEMU's graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.graph.rules.chains import (
    backing_chain_next,
    chain_contains,
    check_op,
    device_name,
    driver_of,
    filter_or_cow,
    is_filter,
    is_root,
    lookup_bs,
    skip_filters,
    skip_implicit,
)
from engine.graph.rules.errors import RuleViolation
from engine.graph.view import GraphView

#: QEMU's MirrorSyncMode; ``incremental`` and ``bitmap`` exist but mirror refuses them
SYNC_MODES = ("top", "full", "none", "incremental", "bitmap")
#: the largest granularity QEMU accepts (64 MiB)
MAX_GRANULARITY = 64 << 20


@dataclass(frozen=True)
class MirrorPlan:
    """What a mirror job works on (node keys)."""

    source: str
    target: str
    #: the sync mode after QEMU's adjustment (``top`` without a backing file is ``full``)
    sync: str
    #: the node the target replaces on completion (None: the source itself)
    replaces: str | None
    #: ``top``: the source's backing (copied data stops above it); else None
    base: str | None
    job_id: str


def root_source(view: GraphView, device: str) -> str:
    """QEMU's qmp_get_root_bs: a device's medium or a node no block node uses."""
    key = lookup_bs(view, device, device)
    if not is_root(view, key):
        raise RuleViolation("Need a root block node")
    return key


def check_drive_mirror_source(view: GraphView, device: str, *, replaces: str | None,
                              node_name: str | None) -> str:
    """``drive-mirror``'s checks before it creates or opens its target."""
    source = root_source(view, device)
    check_op(view, source, "mirror-source")
    if replaces is not None and node_name is None:
        raise RuleViolation("a node-name must be provided when replacing a named node of "
                            "the graph")
    return source


def effective_sync(view: GraphView, source: str, sync: str) -> str:
    """``top`` on a source without a backing file mirrors everything (``full``)."""
    if sync == "top" and backing_chain_next(view, source) is None:
        return "full"
    return sync


def _size(view: GraphView, key: str) -> int:
    info = view.node_info(key)
    return int(info.virtual_size or 0) if info is not None else 0


def can_replace(view: GraphView, top: str, node: str) -> bool:
    """QEMU's bdrv_recurse_can_replace: ``node`` is ``top`` or lies below it through
    filters, or is a direct ``quorum`` child that nothing but the quorum uses (a
    repaired child may differ from the quorum's data, which the new node matches), so
    replacing it cannot change what the guest sees abruptly."""
    work = [top]
    while work:
        key = work.pop()
        if key == node:
            return True
        if driver_of(view, key) == "quorum":
            if any(edge.child == node for edge in view.children(key)):
                return [e.parent for e in view.parents(node)] == [key]
        elif is_filter(view, key):
            below = filter_or_cow(view, key)
            if below is not None:
                work.append(below)
    return False


def _check_replaces(view: GraphView, source: str, replaces: str) -> str:
    info = view.node_info(replaces)
    if info is None or info.kind != "block-node":
        raise RuleViolation(f"Failed to find node with node-name='{replaces}'")
    check_op(view, replaces, "replace")
    if not can_replace(view, source, replaces):
        raise RuleViolation(f"Cannot replace '{replaces}' by a node mirrored from "
                            f"'{source}', because it cannot be guaranteed that doing so "
                            "would not lead to an abrupt change of visible data")
    if _size(view, source) != _size(view, replaces):
        raise RuleViolation("cannot replace image with a mirror image of different size")
    return replaces


def plan_mirror(view: GraphView, source: str, target: str, sync: str, *,
                replaces: str | None = None, granularity: int = 0, buf_size: int = 0,
                job_id: str | None = None) -> MirrorPlan:
    """The shared checks of both mirror commands, in QEMU's order, for a root ``source``
    node and an existing ``target`` node (keys)."""
    if granularity and not 512 <= granularity <= MAX_GRANULARITY:
        raise RuleViolation("Parameter 'granularity' expects a value in range [512B, 64MB]")
    if granularity & (granularity - 1):
        raise RuleViolation("Parameter 'granularity' expects a power of 2")
    check_op(view, source, "mirror-source")
    check_op(view, target, "mirror-target")
    sync = effective_sync(view, source, sync)
    if replaces is None:
        below = skip_implicit(view, source)
        if below is not None and below != source:
            replaces = below
    if replaces is not None:
        replaces = _check_replaces(view, source, replaces)
    if sync in ("incremental", "bitmap"):
        raise RuleViolation(f"Sync mode '{sync}' not supported")
    if buf_size < 0:
        raise RuleViolation("Invalid parameter 'buf-size'")
    if skip_filters(view, source) == skip_filters(view, target):
        raise RuleViolation("Can't mirror node into itself")
    base = backing_chain_next(view, source) if sync == "top" else None
    return MirrorPlan(source, target, sync, replaces, base,
                      job_id if job_id is not None else device_name(view, source))


def check_target_outside_chain(view: GraphView, source: str, target: str) -> None:
    """A mirror (not an active commit) never writes into the source's own chain."""
    below = skip_filters(view, target)
    if below is not None and chain_contains(view, source, below):
        raise RuleViolation("Cannot mirror to a filter on top of a node in the source's "
                            "backing chain")


def check_mirror(view: GraphView, device: str, target: str, sync: str = "full", *,
                 replaces: str | None = None, job_id: str | None = None) -> MirrorPlan:
    """``blockdev-mirror``'s refusals for the editor's preflight: the source by device or
    node name, the target node, then :func:`plan_mirror` and the chain check."""
    source = root_source(view, device)
    target_key = lookup_bs(view, target, target)
    plan = plan_mirror(view, source, target_key, sync, replaces=replaces, job_id=job_id)
    check_target_outside_chain(view, source, target_key)
    return plan

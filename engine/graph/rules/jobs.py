"""QEMU 7.2's checks before it starts a stream or commit job, and for job ids.

:func:`plan_stream` and :func:`plan_commit` make every check ``block-stream`` and
``block-commit`` make before they change anything, in QEMU's order, and return what
the job will work on. The engine starts its jobs from these plans; the editor's
preflight calls the same functions (:func:`check_stream`, :func:`check_commit`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from engine.graph import drivers
from engine.graph import perms as P
from engine.graph.names import check_job_id as job_id_problem
from engine.graph.rules.chains import (
    NEW_AUTO_NAME,
    bottom_of,
    chain_contains,
    check_op,
    cumulative_perm,
    device_name,
    filter_or_cow,
    find_backing_image,
    find_overlay,
    is_filter,
    is_root,
    lookup_bs,
    skip_filters,
    walk,
)
from engine.graph.rules.errors import DeviceNotFound, JobIdInUse, RuleViolation
from engine.graph.rules.permissions import PermissionSim, sim_view
from engine.graph.snapshot import NodeInfo
from engine.graph.view import GraphView


def check_job_id(view: GraphView | None, job_id: str, taken: Iterable[str] = ()) -> None:
    """QEMU's job_create checks: well formed, and not the id of a job that exists
    (one of ``taken``, or a job the view shows, as ``query-block-jobs`` lists them)."""
    problem = job_id_problem(job_id)
    if problem is not None:
        raise RuleViolation(problem)
    if job_id in set(taken) or (view is not None
                                and view.node_info(f"job:{job_id}") is not None):
        raise JobIdInUse(job_id)


@dataclass(frozen=True)
class StreamPlan:
    """What a ``block-stream`` works on (node keys)."""

    device: str
    base: str | None
    base_overlay: str
    #: the node directly above the base (the base's overlay, or a filter below it)
    above_base: str
    #: every node between the device and the base (filters too), top first
    intermediates: tuple[str, ...]
    job_id: str


def _exclusive(pairs: list[tuple[str, object, str, object]]) -> None:
    for a, va, b, vb in pairs:
        if va is not None and vb is not None:
            raise RuleViolation(f"'{a}' and '{b}' cannot be specified at the same time")


def plan_stream(view: GraphView, device: str, *, base: str | None = None,
                base_node: str | None = None, bottom: str | None = None,
                backing_file: str | None = None, job_id: str | None = None) -> StreamPlan:
    """``block-stream``'s checks in QEMU's order (``base`` is a file name, ``base_node``
    and ``bottom`` node names, as in the command's arguments)."""
    _exclusive([("base", base, "base-node", base_node), ("base", base, "bottom", bottom),
                ("bottom", bottom, "base-node", base_node)])
    dev = lookup_bs(view, device, device)
    base_key = _stream_base(view, dev, device, base, base_node)
    bottom_key = _stream_bottom(view, dev, device, bottom)
    end = filter_or_cow(view, bottom_key) if bottom_key is not None else base_key
    for key in walk(view, dev, end):
        check_op(view, key, "stream")
    if base_key is None and backing_file is not None:
        raise RuleViolation("backing file specified, but streaming the entire chain")
    if bottom_key is not None:
        base_overlay = bottom_key
        base_key = filter_or_cow(view, bottom_key)
    elif base_key is not None:
        found = find_overlay(view, dev, base_key)
        if found is None:
            raise RuleViolation(f"'{base_key}' is not in the backing chain of '{dev}'")
        base_overlay = found
    else:
        base_overlay = bottom_of(view, dev)
    intermediates = tuple(walk(view, filter_or_cow(view, dev), base_key))
    return StreamPlan(dev, base_key, base_overlay,
                      intermediates[-1] if intermediates else base_overlay, intermediates,
                      job_id if job_id is not None else device_name(view, dev))


def _stream_base(view: GraphView, dev: str, device: str, base: str | None,
                 base_node: str | None) -> str | None:
    if base is not None:
        found = find_backing_image(view, dev, base)
        if found is None:
            raise RuleViolation(f"Can't find '{base}' in the backing chain")
        return found
    if base_node is not None:
        key = lookup_bs(view, None, base_node)
        if key == dev or not chain_contains(view, dev, key):
            raise RuleViolation(f"Node '{base_node}' is not a backing image of '{device}'")
        return key
    return None


def _stream_bottom(view: GraphView, dev: str, device: str, bottom: str | None) -> str | None:
    if bottom is None:
        return None
    key = lookup_bs(view, None, bottom)
    if is_filter(view, key):
        raise RuleViolation(f"Node '{bottom}' is a filter, use a non-filter node as 'bottom'")
    if not chain_contains(view, dev, key):
        raise RuleViolation(f"Node '{bottom}' is not in a chain starting from '{device}'")
    return key


@dataclass(frozen=True)
class CommitPlan:
    """What a ``block-commit`` works on (node keys)."""

    device: str
    top: str
    base: str
    #: an active commit (the top is the active layer or has a writer): mirror_top, ready
    active: bool
    #: the nodes whose data moves into the base (active: below the top), top first
    intermediates: tuple[str, ...]
    job_id: str


def plan_commit(view: GraphView, device: str, *, top_node: str | None = None,
                top: str | None = None, base_node: str | None = None,
                base: str | None = None, backing_file: str | None = None,
                job_id: str | None = None) -> CommitPlan:
    """``block-commit``'s checks in QEMU's order (``top``/``base`` are file names,
    ``top_node``/``base_node`` node names, as in the command's arguments)."""
    try:
        dev = lookup_bs(view, device, device)
    except RuleViolation:
        raise DeviceNotFound(device) from None
    if not is_root(view, dev):
        raise RuleViolation("Need a root block node")
    check_op(view, dev, "commit-source")
    top_key = _commit_top(view, dev, top_node, top)
    base_key = _commit_base(view, top_key, base_node, base)
    for key in walk(view, top_key, filter_or_cow(view, base_key)):
        check_op(view, key, "commit-target")
    if top_key == base_key:
        raise RuleViolation("cannot commit an image into itself")
    is_active_layer = skip_filters(view, top_key) == skip_filters(view, dev)
    active = "write" in cumulative_perm(view, top_key) or is_active_layer
    if active and backing_file is not None:
        if is_active_layer:
            raise RuleViolation("'backing-file' specified, but 'top' is the active layer")
        raise RuleViolation("'backing-file' specified, but 'top' has a writer on it")
    if not active:
        overlay = find_overlay(view, dev, top_key)
        if overlay is not None:
            check_op(view, overlay, "commit-target")
    first = filter_or_cow(view, top_key) if active else top_key
    return CommitPlan(dev, top_key, base_key, active, tuple(walk(view, first, base_key)),
                      job_id if job_id is not None else device_name(view, dev))


def _commit_top(view: GraphView, dev: str, top_node: str | None, top: str | None) -> str:
    if top_node is not None and top is not None:
        raise RuleViolation("'top-node' and 'top' are mutually exclusive")
    if top_node is not None:
        key = lookup_bs(view, None, top_node)
        if not chain_contains(view, dev, key):
            raise RuleViolation(f"'{top_node}' is not in this backing file chain")
        return key
    if top is not None:
        info = view.node_info(dev)
        if info is None or info.filename != top:
            found = find_backing_image(view, dev, top)
            if found is None:
                raise RuleViolation(f"Top image file {top} not found")
            return found
    return dev


def _commit_base(view: GraphView, top: str, base_node: str | None, base: str | None) -> str:
    if base_node is not None and base is not None:
        raise RuleViolation("'base-node' and 'base' are mutually exclusive")
    if base_node is not None:
        key = lookup_bs(view, None, base_node)
        if not chain_contains(view, top, key):
            raise RuleViolation(f"'{base_node}' is not in this backing file chain")
        return key
    if base is not None:
        found = find_backing_image(view, top, base)
        if found is None:
            raise RuleViolation(f"Can't find '{base}' in the backing chain")
        return found
    return bottom_of(view, top)


# -- the permissions a job takes (preflight: what QEMU checks while it builds the job) ----
def check_stream(view: GraphView, device: str, base: str | None,
                 job_id: str | None = None, *, inline: Collection[str] = ()) -> None:
    """``block-stream job-id device [base-node]``: :func:`plan_stream`'s checks, then
    the permissions the job takes in QEMU's order (the device reopened read-write, a
    copy-on-read filter above it, the job on it and on every node down to ``base``)."""
    plan = plan_stream(view, device, base_node=base)
    device = plan.device
    sim = PermissionSim(view, inline)
    if sim.read_only(device):
        _check_freeze(view, device, plan.above_base)
        sim.reopen_read_only(device, False)
        sim.refresh(device)
    cor = NEW_AUTO_NAME
    sim.add_node(NodeInfo(key=cor, kind="block-node", name=cor, driver="copy-on-read",
                          implicit=True))
    try:
        sim.attach(cor, device, "file")
        sim.refresh(device)
    except RuleViolation as exc:
        raise RuleViolation(f"Could not create node: {exc}") from exc
    try:
        sim.replace_node(device, cor)
        sim.refresh(cor, device)
    except RuleViolation as exc:
        raise RuleViolation(f"Could not replace node: {exc}") from exc
    if job_id is not None:
        check_job_id(view, job_id)
    job = f"job:{job_id or device}"
    sim.add_node(NodeInfo(key=job, kind="block-job", name=job_id or device, driver="stream"))
    _job_link(sim, job, cor, "main node", 0, P.ALL)
    _job_link(sim, "backend:#job", cor, "root", P.CONSISTENT_READ,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED | P.WRITE)
    _job_link(sim, job, device, "active node", 0,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED | P.WRITE)
    for key in plan.intermediates:
        _job_link(sim, job, key, "intermediate node", 0,
                  P.CONSISTENT_READ | P.WRITE_UNCHANGED)


def _job_link(sim: PermissionSim, owner: str, node: str, role: str, perm: int,
              shared: int) -> None:
    """A job (or its block backend) takes ``node``: QEMU refreshes the node's permissions."""
    sim.attach(owner, node, role, perm=perm, shared=shared)
    sim.refresh(node)


def _check_freeze(view: GraphView, top: str, base: str | None) -> None:
    """``bdrv_freeze_backing_chain``: no link from ``top`` down to ``base`` may be frozen
    already, nor lead to a job's filter."""
    links: list[tuple[str, str, str]] = []
    for key in walk(view, top, base):
        nxt = filter_or_cow(view, key)
        if nxt is None:
            break
        links.append((key, "backing" if view.child(key, "backing") == nxt else "file", nxt))
    for parent, role, child in links:
        edge = view.edge(parent, role)
        if edge is not None and edge.frozen:
            raise RuleViolation(f"Cannot change '{role}' link from '{parent}' to '{child}'")
    for _parent, role, child in links:
        info = view.node_info(child)
        if info is not None and info.driver in drivers.INTERNAL_DRIVERS:
            raise RuleViolation(f"Cannot freeze '{role}' link to '{child}'")


def _size(view: GraphView, key: str) -> int:
    info = view.node_info(key)
    return int(info.virtual_size or 0) if info is not None else 0


def commit_is_active(view: GraphView, device: str, top: str) -> bool:
    """QEMU commits actively (a mirror job that waits for ``job-complete``) when someone
    writes to ``top`` or ``top`` is the device's own layer."""
    return "write" in cumulative_perm(view, top) or \
        skip_filters(view, top) == skip_filters(view, device)


def check_commit(view: GraphView, device: str, top: str, base: str | None,
                 job_id: str | None = None, *, inline: Collection[str] = ()) -> None:
    """``block-commit job-id device [top-node] [base-node]``: :func:`plan_commit`'s
    checks, then the permissions the job takes, in QEMU's order."""
    plan = plan_commit(view, device, top_node=top, base_node=base)
    sim = PermissionSim(view, inline)
    if plan.active:
        _check_active_commit(sim, plan.top, plan.base, job_id or device)
    else:
        _check_intermediate_commit(sim, plan.device, plan.top, plan.base, job_id)


def _check_intermediate_commit(sim: PermissionSim, device: str, top: str, base: str,
                               job_id: str | None) -> None:
    view = sim.view
    if skip_filters(view, top) == skip_filters(view, base):
        raise RuleViolation("Invalid files for merge: top and base are the same")
    if job_id is not None:
        check_job_id(view, job_id)
    job = f"job:{job_id or device}"
    sim.add_node(NodeInfo(key=job, kind="block-job", name=job_id or device, driver="commit"))
    _job_link(sim, job, device, "main node", 0, P.ALL)
    if sim.read_only(base):
        sim.reopen_read_only(base, False)
        sim.refresh(base)
    filt = NEW_AUTO_NAME
    sim.add_node(NodeInfo(key=filt, kind="block-node", name=filt, driver="commit_top",
                          read_only=True, implicit=True))
    sim.attach(filt, top, "backing")
    sim.replace_node(top, filt)
    sim.refresh(filt)
    filtered_base = view.child(find_overlay(view, top, base) or top, "backing")
    shared = P.WRITE_UNCHANGED | P.WRITE
    cur: str | None = top
    while cur is not None and cur != base:
        if cur == filtered_base:
            shared |= P.CONSISTENT_READ
        _job_link(sim, job, cur, "intermediate node", 0, shared)
        cur = filter_or_cow(view, cur)
    _check_freeze(sim_view(sim, view), filt, base)
    _job_link(sim, job, base, "base", 0, P.ALL)
    need = P.CONSISTENT_READ | P.WRITE | (P.RESIZE if _size(view, base) < _size(view, top)
                                          else 0)
    _job_link(sim, "backend:#commit-base", base, "root", need,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED)
    _job_link(sim, "backend:#commit-top", top, "root", 0, P.ALL)


def _check_active_commit(sim: PermissionSim, top: str, base: str, job_id: str) -> None:
    view = sim.view
    if sim.read_only(base):
        sim.reopen_read_only(base, False)
        sim.refresh(base)
    if skip_filters(view, top) == skip_filters(view, base):
        raise RuleViolation("Can't mirror node into itself")
    filt = NEW_AUTO_NAME
    sim.add_node(NodeInfo(key=filt, kind="block-node", name=filt, driver="mirror_top",
                          implicit=True))
    sim.attach(filt, top, "backing")
    sim.replace_node(top, filt)
    sim.refresh(filt)
    check_job_id(view, job_id)
    job = f"job:{job_id}"
    sim.add_node(NodeInfo(key=job, kind="block-job", name=job_id, driver="commit"))
    _job_link(sim, job, filt, "main node", P.CONSISTENT_READ,
              P.CONSISTENT_READ | P.WRITE_UNCHANGED | P.WRITE)
    need = P.WRITE | (P.RESIZE if _size(view, base) < _size(view, top) else 0)
    _job_link(sim, "backend:#commit-target", base, "root", need,
              P.WRITE_UNCHANGED | P.CONSISTENT_READ | P.WRITE)
    _job_link(sim, job, top, "source", 0, P.WRITE_UNCHANGED | P.WRITE | P.CONSISTENT_READ)
    _job_link(sim, job, base, "target", 0, P.ALL)
    filtered_target = view.child(find_overlay(view, top, base) or top, "backing")
    shared = P.WRITE_UNCHANGED | P.WRITE
    cur = filter_or_cow(view, top)
    while cur is not None and cur != base:
        if cur == filtered_target:
            shared |= P.CONSISTENT_READ
        _job_link(sim, job, cur, "intermediate node", 0, shared)
        cur = filter_or_cow(view, cur)
    _check_freeze(sim_view(sim, view), filt, base)

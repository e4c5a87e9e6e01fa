"""QEMU 7.2's checks before it starts a stream or commit job, and for job ids.

:func:`plan_stream` and :func:`plan_commit` make every check ``block-stream`` and
``block-commit`` make before they change anything, in QEMU's order, and return what
the job will work on. The engine starts its jobs from these plans; the editor's
preflight calls the same functions (:func:`check_stream`, :func:`check_commit`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.graph.names import check_job_id as job_id_problem
from engine.graph.rules.chains import (
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
from engine.graph.view import GraphView


def check_job_id(job_id: str, taken: Iterable[str] = ()) -> None:
    """QEMU's job_create checks: well formed, and not the id of a job that exists."""
    problem = job_id_problem(job_id)
    if problem is not None:
        raise RuleViolation(problem)
    if job_id in set(taken):
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


def check_stream(view: GraphView, device: str, base: str | None) -> None:
    """The editor's stream preflight: stream node ``device`` down to node ``base``."""
    plan_stream(view, device, base_node=base)


def check_commit(view: GraphView, device: str, top: str, base: str | None) -> None:
    """The editor's commit preflight: on root ``device``, node ``top`` into ``base``."""
    plan_commit(view, device, top_node=top, base_node=base)

"""When the session reads the graph again, and how much of it: events decide, not a clock.

After the first read the session keeps its graph from what tells it something changed:

* QMP events — each calls for what it can have changed (:func:`need_for_event`): a job
  that appeared or ended changes links and nodes (a full re-read); a job that went
  ``ready`` or ``paused`` changes only the jobs; a tray that moved or an image marked
  corrupt changes node details;
* the session's own commands that can change the graph (:func:`need_for_command`);
* a request (Refresh), and reconnecting;
* while a job runs, its progress, polled every ``job_poll_interval`` seconds (jobs only:
  ``query-jobs`` and ``query-block-jobs``, the graph itself is not asked for);
* a slow safety re-read every ``poll_interval`` seconds (None: never), for changes that no
  event reports — another client's ``blockdev-add`` or ``blockdev-reopen`` emits none.
  It asks the cheap ``x-debug-query-block-graph`` first and the node list only if that
  changed (:mod:`gui.session.graph_reader`).

Nothing is read while nothing changes. Two exceptions are made for QEMU's sake, when
QEMU 7.2 must not be asked for ``query-named-block-nodes`` and graph reads wait:

* while an image is being created (a ``blockdev-create`` job): QEMU aborts in
  ``qcow2_get_specific_info`` or hangs on the half-made image; reads wait until the
  creation job has ended;
* while a stream job is ``concluded`` and not yet dismissed: the job inserts an implicit
  copy-on-read filter, detaches it from its child as it completes, yet holds the
  childless node until it is dismissed; the node list then refreshes that node's file
  name from the child it no longer has and QEMU segfaults in ``bdrv_refresh_filename``.
  A job started with ``auto-dismiss: false`` — as libvirt starts its jobs, dismissing
  them once it has seen the end — stays so until dismissed, so reads wait for the job's
  ``null``. ``query-jobs``, ``query-block-jobs`` and ``x-debug-query-block-graph`` are
  safe then. Commit, mirror and backup jobs leave their filters whole: no wait.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class Need(enum.IntEnum):
    """How much to read, in increasing order: each level includes the ones below."""

    NOTHING = 0
    JOBS = 1      # query-jobs and query-block-jobs: statuses and progress
    GRAPH = 2     # the graph: the debug graph, the node list if that changed
    NODES = 3     # the graph and the node list, whether the links changed or not


#: Job statuses in which the job makes progress: its progress is polled meanwhile. A
#: ready job is not among them: it has copied everything and waits for the user (its
#: figures move only with the guest's writes), and every way out of it is an event.
PROGRESSING = frozenset({"created", "running", "waiting", "pending", "aborting"})
#: Job statuses of a job that exists and has not ended (concluded jobs wait for dismiss).
ACTIVE = PROGRESSING | {"ready", "paused", "standby"}
#: Job types whose job holds its filter node, detached from its child, from its
#: completion until it is dismissed.
DETACHED_FILTER_JOB_TYPES = frozenset({"stream"})
#: Statuses whose event means job nodes (and a job's filter) appeared or went away.
_STRUCTURAL_STATUSES = frozenset({"created", "concluded", "null", "aborting"})

#: Events and what they call for; others call for nothing.
_EVENT_NEEDS: Mapping[str, Need] = {
    "BLOCK_JOB_COMPLETED": Need.NODES,      # links changed (stream, commit), nodes left
    "BLOCK_JOB_CANCELLED": Need.NODES,
    "BLOCK_JOB_READY": Need.JOBS,
    "BLOCK_JOB_PENDING": Need.JOBS,
    "BLOCK_JOB_ERROR": Need.JOBS,
    "BLOCK_IMAGE_CORRUPTED": Need.NODES,
    "BLOCK_WRITE_THRESHOLD": Need.NODES,
    "BLOCK_EXPORT_DELETED": Need.NODES,
    "DEVICE_DELETED": Need.NODES,
    "DEVICE_TRAY_MOVED": Need.NODES,
}

#: Commands that change no graph (they read, or act on jobs, whose events say the rest).
_NO_GRAPH_CHANGE_PREFIXES = ("query-", "x-debug-query-", "job-", "block-job-")
_NO_GRAPH_CHANGE = frozenset({"qmp_capabilities", "blockdev-create"})


def need_for_event(name: str, data: Mapping[str, Any]) -> Need:
    """What a QMP event calls for reading again."""
    if name == "JOB_STATUS_CHANGE":
        return Need.NODES if data.get("status") in _STRUCTURAL_STATUSES else Need.JOBS
    return _EVENT_NEEDS.get(name, Need.NOTHING)


def need_for_command(command: str) -> Need:
    """What this client's own command calls for reading again once it has been answered."""
    if command in _NO_GRAPH_CHANGE or command.startswith(_NO_GRAPH_CHANGE_PREFIXES):
        return Need.NOTHING
    return Need.NODES

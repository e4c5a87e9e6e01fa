"""A mirror's pivot refused by permissions, against qemu-storage-daemon 7.2.

When ``job-complete`` would move a parent of the source that needs ``consistent-read``
onto a target whose other parent does not share it (blkdebug's ``take-child-perms``
and ``unshare-child-perms`` set this up), QEMU refuses the replacement: the job ends
with ``Operation not permitted``, every node stays where it was, and the job's filter
goes. Graph (with each link's permissions), events and replies are compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.jobdiff import Cmd, WaitStatus, run_jobs

pytestmark = pytest.mark.qemu


def nothing(d: Path) -> None:
    """The scenario uses null-co nodes only."""


def null(name: str, **extra: object) -> Cmd:
    return Cmd("blockdev-add", {"driver": "null-co", "node-name": name, **extra})


def blkdebug(name: str, image: str, **perms: list[str]) -> Cmd:
    return Cmd("blockdev-add", {"driver": "blkdebug", "node-name": name, "image": image,
                                **{k.replace("_", "-"): v for k, v in perms.items()}})


def test_pivot_refused_by_a_parent_the_target_cannot_satisfy(tmp_path: Path) -> None:
    run_jobs(tmp_path, nothing, [
        null("src"), null("dest"),
        blkdebug("dest-perm", "dest", unshare_child_perms=["consistent-read"]),
        Cmd("blockdev-mirror", {"job-id": "job", "device": "src", "target": "dest",
                                "sync": "full", "filter-node-name": "mirror-filter"}),
        blkdebug("src-perm", "src", take_child_perms=["consistent-read"]),
        WaitStatus("job", "ready"),
        Cmd("job-complete", {"id": "job"}, compare_graph=False),
        WaitStatus("job", "null"),
    ])


def test_blkdebug_child_permissions_conflict_when_added(tmp_path: Path) -> None:
    """Taking what another parent does not share is refused at blockdev-add, in QEMU's
    words; unsharing what another parent takes too."""
    run_jobs(tmp_path, nothing, [
        null("a"),
        blkdebug("a-unshare", "a", unshare_child_perms=["consistent-read", "write"]),
        blkdebug("a-take", "a", take_child_perms=["consistent-read"]),
        blkdebug("a-take-write", "a", take_child_perms=["write"]),
        null("b"),
        blkdebug("b-take", "b", take_child_perms=["write", "resize"]),
        blkdebug("b-unshare", "b", unshare_child_perms=["resize"]),
    ])

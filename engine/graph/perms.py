"""Block permissions: QEMU's four bits, how each edge derives them, and conflicts.

Every child link carries ``perm`` (what the parent needs from the child) and
``shared`` (what it lets other parents do). A node's *cumulative* permissions are
the union of its parent links' ``perm`` and the intersection of their ``shared``.
A link's permissions follow from the parent's role and driver and from the parent's
own cumulative permissions (QEMU's default rules for storage, COW and filter
children; see :func:`child_perms`), so a change propagates down the graph.

Two texts come from here: the permission conflict between two parents of a node,
and the image-lock failures between two ``file`` nodes on one host file (QEMU
takes byte-range locks for the bits a node holds and for the bits it does not
share; a second node on the file behaves like a second process).
"""

from __future__ import annotations

from typing import Any

from engine.graph.drivers import Driver, Kind

CONSISTENT_READ = 1
WRITE = 2
WRITE_UNCHANGED = 4
RESIZE = 8
ALL = 15

#: QMP enum names (x-debug-query-block-graph), listed high bit first as QEMU does.
_QMP_NAMES = ((RESIZE, "resize"), (WRITE_UNCHANGED, "write-unchanged"), (WRITE, "write"),
              (CONSISTENT_READ, "consistent-read"))
#: Names used in error texts, low bit first.
_TEXT_NAMES = ((CONSISTENT_READ, "consistent read"), (WRITE, "write"),
               (WRITE_UNCHANGED, "write unchanged"), (RESIZE, "resize"))


def qmp_names(bits: int) -> tuple[str, ...]:
    return tuple(name for bit, name in _QMP_NAMES if bits & bit)


def text_names(bits: int) -> str:
    return ", ".join(name for bit, name in _TEXT_NAMES if bits & bit)


def child_perms(spec: Driver, role: str, *, writable: bool, force_share_child: bool,
                parent_perm: int, parent_shared: int, fixed_size: bool = False,
                rewrites: bool = False, commit_filter: bool = True,
                extra: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """(perm, shared) a node of driver ``spec`` takes on its child in ``role``.

    ``parent_perm``/``parent_shared`` are the node's own cumulative permissions
    (0 / ALL when nobody uses it); ``writable``: the node is read-write;
    ``fixed_size``: a raw node with ``offset``/``size`` (it must keep the child's size);
    ``force_share_child``: the child was opened with ``force-share`` (shares all);
    ``rewrites``: a ``quorum`` that rewrites corrupted children (it writes to them);
    ``commit_filter`` False: a ``mirror_top`` of a mirror job (not an active commit),
    which passes its users' needs through as any filter does; ``extra``: permissions
    the node takes and unshares besides (blkdebug's ``take-child-perms`` and
    ``unshare-child-perms``, see :func:`blkdebug_extra`).
    """
    driver = spec.name
    if driver == "quorum":
        # the children must stay alike: nobody else may write to them or resize them
        perm = parent_perm | (WRITE if rewrites else 0)
        shared = parent_shared & (CONSISTENT_READ | WRITE_UNCHANGED)
    elif driver == "commit_top":
        # an intermediate commit's filter needs nothing from the top node and lets the
        # job write below it, so the top's backing link shares everything
        perm, shared = 0, ALL
    elif driver == "mirror_top" and commit_filter:
        # an active commit's filter passes its users' needs through, but must not take
        # consistent-read (unshared above the base) and force-shares write, or the job
        # would block its own writes to the base through the chain's backing links
        perm = parent_perm & ~CONSISTENT_READ
        shared = parent_shared | WRITE
    elif driver == "mirror_top":
        perm, shared = parent_perm, parent_shared   # a mirror's filter passes through
    elif role == "backing":
        perm = parent_perm & CONSISTENT_READ
        shared = (WRITE | RESIZE) if parent_shared & WRITE else 0
        shared |= CONSISTENT_READ | WRITE_UNCHANGED
    elif role == "test":
        # blkverify's data child: its users' needs pass through, and since its size is
        # the guest's, nobody else may resize it
        perm = parent_perm
        shared = parent_shared & ~RESIZE
    elif (spec.kind is Kind.FORMAT and driver != "raw") or role == "data-file":
        perm = parent_perm | CONSISTENT_READ | ((WRITE | RESIZE) if writable else 0)
        shared = parent_shared & ~(WRITE | RESIZE)
    else:  # filters and raw pass their users' needs through
        perm = parent_perm
        shared = parent_shared
        if spec.writes_unchanged:
            perm |= WRITE_UNCHANGED
        if driver == "preallocate" and parent_perm & (WRITE | RESIZE) == WRITE | RESIZE:
            shared &= ~(WRITE | RESIZE)     # the filter alone grows and cuts the file
        if fixed_size:
            shared &= ~RESIZE
    perm |= extra[0]
    shared &= ~extra[1]
    if force_share_child:
        shared = ALL
    return perm & ALL, shared & ALL


_BY_QMP_NAME = {name: bit for bit, name in _QMP_NAMES}


def blkdebug_extra(driver: str, options: dict[str, Any]) -> tuple[int, int]:
    """What a blkdebug node takes and unshares on its child beyond a filter's needs
    (its ``take-child-perms`` and ``unshare-child-perms`` options; QEMU's tests use
    them to provoke permission conflicts)."""
    if driver != "blkdebug":
        return 0, 0

    def bits(key: str) -> int:
        names = options.get(key) or []
        return sum(_BY_QMP_NAME.get(n, 0) for n in dict.fromkeys(names))

    return bits("take-child-perms"), bits("unshare-child-perms")


def quorum_rewrites(driver: str, options: dict[str, Any]) -> bool:
    """Does a node write to its children on reads (``quorum``'s ``rewrite-corrupted``,
    which the ``fifo`` read pattern ignores)?"""
    return driver == "quorum" and bool(options.get("rewrite-corrupted")) and (
        options.get("read-pattern", "quorum") == "quorum")


#: (perm, shared) of BlockBackends by kind.
DEVICE_SHARED = CONSISTENT_READ | WRITE_UNCHANGED | RESIZE
EXPORT_SHARED = CONSISTENT_READ | WRITE_UNCHANGED | WRITE


def backend_perms(kind: str, writable: bool, removable: bool = False) -> tuple[int, int]:
    """A device's (disk, CD-ROM) or an export's permissions on its root node.

    Observed in QEMU 7.2: a disk takes write + consistent-read and shares resize,
    write-unchanged, consistent-read; a CD-ROM takes consistent-read and shares
    write-unchanged, consistent-read.
    """
    perm = CONSISTENT_READ | (WRITE if writable else 0)
    if kind == "device":
        return perm, (CONSISTENT_READ | WRITE_UNCHANGED) if removable else DEVICE_SHARED
    return perm, EXPORT_SHARED


def lock_conflict(perm: int, shared: int, other_perm: int, other_shared: int) -> str | None:
    """QEMU's lock error for a ``file`` node with (perm, shared) beside another one."""
    for bit, name in _TEXT_NAMES:
        if perm & bit and not other_shared & bit:
            return f'Failed to get "{name}" lock'
    for bit, name in _TEXT_NAMES:
        if not shared & bit and other_perm & bit:
            return f'Failed to get shared "{name}" lock'
    return None

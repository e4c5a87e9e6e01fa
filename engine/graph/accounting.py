"""Block accounting of a BlockBackend: what ``query-blockstats`` reports per device.

QEMU counts a backend's requests where its user accounts them: the guest device
models, and qemu-io's ``aio_*`` commands. Plain ``read``/``write`` through the
human monitor's qemu-io, block jobs and exports are not accounted, and the bundled
engine has no other guest, so a backend's counters stay as they start; the per-node
``wr_highest_offset`` (:meth:`engine.graph.nodes.Node.note_write`) is where writes
show. The types are QEMU's BLOCK_ACCT_* kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: QEMU's accounting kinds, in the order its counters are kept
KINDS = ("read", "write", "flush", "unmap")


def _per_kind() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


@dataclass
class BlockAcctStats:
    """One backend's counters (bytes, done, failed and invalid requests, time spent).

    ``account_invalid``/``account_failed`` say whether invalid and failed requests
    count towards the idle time and latency figures; both default to on, as in QEMU.
    """

    nr_bytes: dict[str, int] = field(default_factory=_per_kind)
    nr_ops: dict[str, int] = field(default_factory=_per_kind)
    failed_ops: dict[str, int] = field(default_factory=_per_kind)
    invalid_ops: dict[str, int] = field(default_factory=_per_kind)
    merged: dict[str, int] = field(default_factory=_per_kind)
    total_time_ns: dict[str, int] = field(default_factory=_per_kind)
    #: the monotonic time (ns) of the last accounted request; 0: none yet
    last_access_time_ns: int = 0
    account_invalid: bool = True
    account_failed: bool = True

"""Block accounting of a BlockBackend: what ``query-blockstats`` reports per device.

QEMU counts a backend's requests where its user accounts them: the guest device
models, and qemu-io's ``aio_*`` commands (the bundled engine's only guest requests).
Plain ``read``/``write`` through the human monitor's qemu-io, block jobs and exports
are not accounted; the per-node ``wr_highest_offset``
(:meth:`engine.graph.nodes.Node.note_write`) is where every write shows. The kinds
are QEMU's BLOCK_ACCT_* ones; times are the host's monotonic clock in nanoseconds.
"""

from __future__ import annotations

import time
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

    def start(self, kind: str, nbytes: int) -> Cookie:
        """A request of ``kind`` and ``nbytes`` begins (counted when it ends)."""
        return Cookie(kind, nbytes, time.monotonic_ns())

    def done(self, cookie: Cookie, *, failed: bool = False) -> None:
        """The request ended: a success counts its bytes, a failure only itself; the
        time counts unless a failure and ``account_failed`` is off."""
        now = time.monotonic_ns()
        if failed:
            self.failed_ops[cookie.kind] += 1
        else:
            self.nr_bytes[cookie.kind] += cookie.nbytes
            self.nr_ops[cookie.kind] += 1
        if not failed or self.account_failed:
            self.total_time_ns[cookie.kind] += now - cookie.start_ns
            self.last_access_time_ns = now

    def invalid(self, kind: str) -> None:
        """A request refused before it was made (it took no time)."""
        self.invalid_ops[kind] += 1
        if self.account_invalid:
            self.last_access_time_ns = time.monotonic_ns()


@dataclass(frozen=True)
class Cookie:
    """One accounted request under way."""

    kind: str
    nbytes: int
    start_ns: int

"""A throttle group's budget: the fill of its six leaky buckets, as QEMU 7.2 keeps it.

Each bucket of a :class:`~engine.graph.throttle.ThrottleConfig` with an average rate has
a *level* that every request raises (bytes for a ``bps`` bucket; one, or the request's
size in ``iops-size`` units, for an ``iops`` bucket) and that leaks at the average rate.
A request may go while no bucket it touches (total and read, or total and write) is
fuller than its size: a tenth of a second at the average rate, or with a burst rate
``max`` of ``max`` × ``max-length`` seconds. A bucket with a burst length above one has
a second level that leaks at the burst rate and must stay under a tenth of a second at
that rate, so a burst runs at ``max`` and no faster.

The request that finds the buckets under their sizes is accounted whole, however large:
the next one waits until the levels leaked back. Times are seconds on the group's clock.
"""

from __future__ import annotations

from engine.graph.throttle import BUCKETS, ThrottleConfig

#: the buckets a request checks, by direction (QEMU's order; it takes the longest wait)
_CHECKED = {False: ("bps-total", "iops-total", "bps-read", "iops-read"),
            True: ("bps-total", "iops-total", "bps-write", "iops-write")}
#: a bucket holds this many seconds of its rate before requests wait
_SLICE = 10


class Budget:
    """The levels of one group's buckets under one configuration."""

    def __init__(self, config: ThrottleConfig, now: float) -> None:
        self.config = config
        self.level = dict.fromkeys(BUCKETS, 0.0)
        self.burst_level = dict.fromkeys(BUCKETS, 0.0)
        self.previous_leak = now

    def enabled(self) -> bool:
        """Whether any bucket has a rate (a group without one never delays)."""
        return any(b.avg for b in self.config.buckets.values())

    def leak(self, now: float) -> None:
        """Let every bucket drain for the time since the last leak."""
        delta = now - self.previous_leak
        self.previous_leak = now
        if delta <= 0:
            return
        for name, bucket in self.config.buckets.items():
            self.level[name] = max(self.level[name] - bucket.avg * delta, 0.0)
            if bucket.burst_length > 1:
                self.burst_level[name] = max(self.burst_level[name] - bucket.max * delta, 0.0)

    def _bucket_wait(self, name: str) -> float:
        bucket = self.config.buckets[name]
        if not bucket.avg:
            return 0.0
        if bucket.max:
            size = float(bucket.max * bucket.burst_length)
            burst_size = bucket.max / _SLICE
        else:
            size = bucket.avg / _SLICE
            burst_size = 0.0
        extra = self.level[name] - size
        if extra > 0:
            return extra / bucket.avg
        if bucket.burst_length > 1:
            extra = self.burst_level[name] - burst_size
            if extra > 0:
                return extra / bucket.max
        return 0.0

    def wait(self, is_write: bool) -> float:
        """Seconds until a request in this direction may go (0: now); leak first."""
        return max(self._bucket_wait(name) for name in _CHECKED[is_write])

    def account(self, is_write: bool, size: int) -> None:
        """A request of ``size`` bytes goes: raise the levels it fills."""
        op_size = self.config.op_size
        units = size / op_size if op_size and size > op_size else 1.0
        kind = "write" if is_write else "read"
        for name, amount in ((f"bps-{kind}", float(size)), ("bps-total", float(size)),
                             (f"iops-{kind}", units), ("iops-total", units)):
            self.level[name] += amount
            if self.config.buckets[name].burst_length > 1:
                self.burst_level[name] += amount

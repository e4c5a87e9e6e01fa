"""Throttle groups: the ``throttle-group`` objects that ``throttle`` nodes share.

A group holds one set of I/O limits (QEMU's ThrottleConfig: six leaky buckets —
bps and iops, each total, read and write — with an average, a burst rate and a
burst length, plus the iops request size). Every ``throttle`` node names the group
it belongs to; nodes sharing a group share its limits.

QEMU keeps the bucket figures as unsigned 64-bit numbers: a negative number given
through ``limits`` wraps around (and then fails the range check), while the legacy
``x-*`` properties refuse negative values outright. Reads give the figures back as
signed numbers, as QEMU's getters do. The checks and texts here are QEMU 7.2's.

The limits are enforced on the requests of the group's ``throttle`` nodes: the fill of
the buckets is :mod:`engine.graph.throttle_budget`'s, the queue of requests that wait
their turn :mod:`engine.graph.throttle_queue`'s (the group's ``queue``, made by the
first request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.qdict import qdict_order

if TYPE_CHECKING:
    from engine.graph.throttle_queue import GroupQueue

_U64 = (1 << 64) - 1
_UINT_MAX = (1 << 32) - 1
#: QEMU's THROTTLE_VALUE_MAX: the largest average or burst rate
VALUE_MAX = 10 ** 15

#: the buckets, in QEMU's order
BUCKETS = ("bps-total", "bps-read", "bps-write", "iops-total", "iops-read", "iops-write")

#: ThrottleLimits members in the schema's order (QEMU's replies list them in QDict order)
LIMIT_MEMBERS = (
    "iops-total", "iops-total-max", "iops-total-max-length",
    "iops-read", "iops-read-max", "iops-read-max-length",
    "iops-write", "iops-write-max", "iops-write-max-length",
    "bps-total", "bps-total-max", "bps-total-max-length",
    "bps-read", "bps-read-max", "bps-read-max-length",
    "bps-write", "bps-write-max", "bps-write-max-length",
    "iops-size",
)
#: the legacy one-figure properties (``x-iops-total`` ...), same order
LEGACY_PROPERTIES = tuple("x-" + m for m in LIMIT_MEMBERS)


class ThrottleError(ValueError):
    """A refused configuration; the text is QEMU's."""


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


@dataclass
class Bucket:
    avg: int = 0
    max: int = 0
    burst_length: int = 1


@dataclass
class ThrottleConfig:
    """One group's limits (figures stored unsigned, as QEMU stores them)."""

    buckets: dict[str, Bucket] = field(
        default_factory=lambda: {name: Bucket() for name in BUCKETS})
    op_size: int = 0

    def copy(self) -> ThrottleConfig:
        return ThrottleConfig({k: Bucket(b.avg, b.max, b.burst_length)
                               for k, b in self.buckets.items()}, self.op_size)

    def get(self, member: str) -> int:
        """A ThrottleLimits member's figure, as QEMU's getter reports it."""
        if member == "iops-size":
            return _signed(self.op_size)
        bucket, part = _split(member)
        return _signed(getattr(self.buckets[bucket], part))

    def put(self, member: str, value: int) -> None:
        if member == "iops-size":
            self.op_size = value & _U64
            return
        bucket, part = _split(member)
        setattr(self.buckets[bucket], part, value & _U64)

    def limits(self) -> dict[str, int]:
        """Every ThrottleLimits member, in the order QEMU's reply lists them."""
        return {m: self.get(m) for m in qdict_order(LIMIT_MEMBERS)}

    def check(self) -> None:
        """QEMU's validity rules, in its order; raises :class:`ThrottleError`."""
        b = self.buckets

        def mixed(part: str, total: str, read: str, write: str) -> bool:
            return bool(getattr(b[total], part)
                        and (getattr(b[read], part) or getattr(b[write], part)))

        if any(mixed(part, f"{kind}-total", f"{kind}-read", f"{kind}-write")
               for part in ("avg", "max") for kind in ("bps", "iops")):
            raise ThrottleError("bps/iops/max total values and read/write values cannot "
                                "be used at the same time")
        if self.op_size and not any(b[k].avg for k in ("iops-total", "iops-read",
                                                       "iops-write")):
            raise ThrottleError("iops size requires an iops value to be set")
        for bucket in b.values():
            if bucket.avg > VALUE_MAX or bucket.max > VALUE_MAX:
                raise ThrottleError(f"bps/iops/max values must be within [0, {VALUE_MAX}]")
            if not bucket.burst_length:
                raise ThrottleError("the burst length cannot be 0")
            if bucket.burst_length > 1 and not bucket.max:
                raise ThrottleError("burst length set without burst rate")
            if bucket.max and bucket.burst_length > VALUE_MAX // bucket.max:
                raise ThrottleError("burst length too high for this burst rate")
            if bucket.max and not bucket.avg:
                raise ThrottleError("bps_max/iops_max require corresponding bps/iops values")
            if bucket.max and bucket.max < bucket.avg:
                raise ThrottleError("bps_max/iops_max cannot be lower than bps/iops")

    def apply_limits(self, limits: dict[str, int]) -> ThrottleConfig:
        """This configuration with the ThrottleLimits members given changed (QEMU's
        ``limits`` setter: members left out keep their figure); checked."""
        new = self.copy()
        for member in LIMIT_MEMBERS[:-1]:
            if not member.endswith("-length") and member in limits:
                new.put(member, limits[member])
        for member in (f"{bucket}-max-length" for bucket in BUCKETS):
            if member in limits:
                if limits[member] > _UINT_MAX:
                    raise ThrottleError(f"{member} value must be in the range "
                                        f"[0, {_UINT_MAX}]")
                new.put(member, limits[member])
        if "iops-size" in limits:
            new.put("iops-size", limits["iops-size"])
        new.check()
        return new


def _split(member: str) -> tuple[str, str]:
    """``bps-read-max`` -> (``bps-read``, ``max``)."""
    kind, direction, *rest = member.split("-")
    part = {(): "avg", ("max",): "max", ("max", "length"): "burst_length"}[tuple(rest)]
    return f"{kind}-{direction}", part


@dataclass
class ThrottleGroup:
    """A ``throttle-group`` object: its id, limits and (once used) queue of requests."""

    name: str
    config: ThrottleConfig = field(default_factory=ThrottleConfig)
    queue: GroupQueue | None = field(default=None, repr=False, compare=False)

    def get_property(self, prop: str) -> Any:
        if prop == "type":
            return "throttle-group"
        if prop == "limits":
            return self.config.limits()
        if prop in LEGACY_PROPERTIES:
            return self.config.get(prop[2:])
        raise KeyError(prop)


def configure(properties: dict[str, Any]) -> ThrottleConfig:
    """A new group's configuration from ``object-add``'s properties, set in QEMU's QDict
    order (a later one overrides an earlier one's figures). Not yet checked as a whole:
    QEMU does that when the object is complete (:meth:`ThrottleConfig.check`)."""
    config = ThrottleConfig()
    present = [p for p in ("limits", *LEGACY_PROPERTIES) if p in properties]
    for prop in qdict_order(present):
        value = properties[prop]
        if prop == "limits":
            config = config.apply_limits(value)
            continue
        if value < 0:
            raise ThrottleError("Property values cannot be negative")
        if prop.endswith("-length") and value > _UINT_MAX:
            # QEMU's text lacks the space between "the" and "range"
            raise ThrottleError(f"{prop} value must be in therange [0, {_UINT_MAX}]")
        config.put(prop[2:], value)
    return config

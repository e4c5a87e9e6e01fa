"""Throttle groups' leaky buckets and queues on a manual clock: when each request goes.

The figures are QEMU 7.2's rules worked by hand (util/throttle.c, block/throttle-groups.c):
a bucket holds a tenth of a second of its average rate (or ``max`` × ``max-length`` with
a burst rate), the request that finds room is accounted whole, the members of a group
take turns. Time moves only when a test advances it; every wait is for a condition."""

from __future__ import annotations

import threading

import pytest

from engine.clock import ManualClock
from engine.graph.throttle import ThrottleConfig, ThrottleGroup
from engine.graph.throttle_budget import Budget
from engine.graph.throttle_queue import GroupQueue, Member
from tests.support.processes import wait_until

KIB = 1024


def config(**figures: int) -> ThrottleConfig:
    return ThrottleConfig().apply_limits({k.replace("_", "-"): v for k, v in figures.items()})



# -- the buckets ----------------------------------------------------------------------

def test_a_request_goes_while_the_bucket_has_room_and_is_accounted_whole() -> None:
    budget = Budget(config(bps_total=1000), 0.0)
    assert budget.wait(False) == 0
    budget.account(False, 4096)
    # 4096 bytes in a bucket of 100 (a tenth of a second): 3996 bytes too many
    assert budget.wait(False) == pytest.approx(3.996)
    assert budget.wait(True) == pytest.approx(3.996)          # total counts both ways
    budget.leak(1.0)
    assert budget.wait(False) == pytest.approx(2.996)
    budget.leak(10.0)
    assert budget.wait(False) == 0


def test_read_and_write_buckets_are_separate() -> None:
    budget = Budget(config(bps_read=1000, iops_write=10), 0.0)
    budget.account(False, 4096)
    assert budget.wait(False) == pytest.approx(3.996)
    assert budget.wait(True) == 0
    budget.account(True, 1)
    budget.account(True, 1)
    # two operations in a bucket of one: one too many at ten a second
    assert budget.wait(True) == pytest.approx(0.1)


def test_iops_size_counts_a_large_request_as_several_operations() -> None:
    budget = Budget(config(iops_total=10, iops_size=4096), 0.0)
    budget.account(True, 16384)
    assert budget.wait(True) == pytest.approx((4 - 1) / 10)
    small = Budget(config(iops_total=10, iops_size=4096), 0.0)
    small.account(True, 512)                                  # smaller: one operation
    assert small.wait(True) == 0


def test_a_burst_runs_at_the_burst_rate_up_to_its_length() -> None:
    budget = Budget(config(bps_total=100, bps_total_max=1000, bps_total_max_length=2), 0.0)
    budget.account(False, 50)
    assert budget.wait(False) == 0
    budget.account(False, 500)
    # under max × length (2000) but 450 over a tenth of a second at the burst rate
    assert budget.wait(False) == pytest.approx(0.45)
    budget.leak(0.45)
    assert budget.wait(False) == 0
    for _ in range(4):
        budget.account(False, 500)
    # the long bucket holds 2000: past it the average rate rules
    budget.leak(0.45 + 0.001)
    assert budget.level["bps-total"] > 2000
    assert budget.wait(False) == pytest.approx((budget.level["bps-total"] - 2000) / 100)


def test_a_burst_without_length_only_sizes_the_bucket() -> None:
    budget = Budget(config(iops_read=10, iops_read_max=50), 0.0)
    for _ in range(50):
        budget.account(False, 512)
    assert budget.wait(False) == 0                            # 50 fit in max × 1 s
    budget.account(False, 512)
    assert budget.wait(False) == pytest.approx(0.1)


# -- the queue of a group ---------------------------------------------------------------

class Harness:
    """A group's queue on a manual clock, requests issued from threads, each logging
    ``(name, time)`` when it went."""

    def __init__(self, **figures: int) -> None:
        self.clock = ManualClock(start=0.0)
        self.group = ThrottleGroup("tg0", config(**figures))
        self.queue = GroupQueue(self.group, self.clock, threading.RLock())
        self.went: list[tuple[str, float]] = []
        self.threads: list[threading.Thread] = []

    def member(self, name: str) -> Member:
        member = Member(name)
        self.queue.register(member)
        return member

    def request(self, member: Member, label: str, size: int, *, write: bool = False,
                queued: bool = True) -> None:
        """Issue a request; return once it went (``queued`` False) or once it waits."""
        before = self.queue.queued(member, write)

        def run() -> None:
            self.queue.intercept(member, size, write)
            self.went.append((label, self.clock.monotonic()))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        if queued:
            wait_until(lambda: self.queue.queued(member, write) == before + 1, f"{label} queued")
        else:
            thread.join(10)
            assert not thread.is_alive(), f"{label} did not go at once"

    def advance(self, seconds: float) -> None:
        """Move the clock (a hair further, so that sums of decimal steps never stop a
        rounding error short of a due time); return once the requests let go went."""
        self.clock.advance(seconds + 1e-9)
        self.queue.poll()
        wait_until(self.queue.settled, "the released requests")
        waiting = sum(self.queue.queued(m, w) for m in self.queue.members for w in (0, 1))
        wait_until(lambda: len(self.went) == len(self.threads) - waiting, "the log")

    def finish(self) -> None:
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()


def test_requests_wait_for_the_bucket_to_leak() -> None:
    h = Harness(bps_total=1000)
    a = h.member("a")
    h.request(a, "a1", 1000, queued=False)
    h.request(a, "a2", 1000)
    h.request(a, "a3", 1000)
    for _ in range(8):
        h.advance(0.1)
    assert h.went == [("a1", 0.0)]
    h.advance(0.1)                                            # 1000 - 900 = 100: room
    assert h.went == [("a1", 0.0), ("a2", pytest.approx(0.9))]
    h.advance(1.0)
    assert h.went[-1] == ("a3", pytest.approx(1.9))
    h.finish()


def test_members_of_a_group_take_turns() -> None:
    """a queued three requests before b queued one: b's goes second, not last."""
    h = Harness(bps_total=1000)
    a, b = h.member("a"), h.member("b")
    h.request(a, "a1", 1000, queued=False)
    h.request(a, "a2", 1000)
    h.request(a, "a3", 1000)
    h.request(b, "b1", 1000)
    for _ in range(3):
        h.advance(0.9)
        h.advance(0.1)
    assert [label for label, _ in h.went] == ["a1", "a2", "b1", "a3"]
    assert [t for _, t in h.went] == pytest.approx([0.0, 0.9, 1.9, 2.9])
    h.finish()


def test_reads_and_writes_queue_apart() -> None:
    h = Harness(bps_read=1000)
    a = h.member("a")
    h.request(a, "r1", 1000, queued=False)
    h.request(a, "r2", 1000)
    h.request(a, "w1", 1000, write=True, queued=False)       # writes are not limited
    assert [label for label, _ in h.went] == ["r1", "w1"]
    h.advance(0.9)
    assert h.went[-1] == ("r2", pytest.approx(0.9))
    h.finish()


def test_new_limits_apply_from_the_next_request_and_keep_the_armed_timer() -> None:
    h = Harness(bps_total=1000)
    a = h.member("a")
    h.request(a, "a1", 1000, queued=False)
    h.request(a, "a2", 1000)
    h.group.config = h.group.config.apply_limits({"bps-total": 100_000})
    h.advance(0.5)
    assert [label for label, _ in h.went] == ["a1"]          # a2 keeps its timer (0.9)
    h.advance(0.4)
    h.request(a, "a3", 1000, queued=False)                    # empty buckets, fast rate
    assert [label for label, _ in h.went] == ["a1", "a2", "a3"]
    h.finish()


def test_release_lets_queued_requests_go_and_limits_still_apply_after() -> None:
    h = Harness(iops_total=1)
    a, b = h.member("a"), h.member("b")
    h.request(a, "a1", 512, queued=False)
    h.request(a, "a2", 512)
    h.request(a, "a3", 512)
    h.request(b, "b1", 512)
    h.queue.release(a)
    wait_until(lambda: len(h.went) == 3, "a's requests")
    assert sorted(label for label, _ in h.went) == ["a1", "a2", "a3"]
    assert h.queue.queued(b, False) == 1                      # b keeps waiting its turn
    h.advance(3.0)
    assert h.went[-1][0] == "b1"
    h.finish()


def test_a_member_leaving_lets_its_requests_go() -> None:
    h = Harness(iops_total=1)
    a, b = h.member("a"), h.member("b")
    h.request(b, "b1", 512, queued=False)
    h.request(a, "a1", 512)
    h.request(b, "b2", 512)
    leaving = threading.Thread(target=h.queue.unregister, args=(a,), daemon=True)
    leaving.start()
    leaving.join(10)
    assert not leaving.is_alive()
    wait_until(lambda: len(h.went) == 2, "a's request")
    assert [label for label, _ in h.went] == ["b1", "a1"]
    h.advance(2.0)
    assert h.went[-1][0] == "b2"
    assert h.queue.members == [b]
    h.finish()

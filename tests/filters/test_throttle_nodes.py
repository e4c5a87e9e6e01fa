"""``throttle`` nodes in the engine's graph on a manual clock: guest requests through
the nodes wait for their group's budget, the nodes of a group share it, and the monitor
answers (and changes the limits) while a request waits."""

from __future__ import annotations

import threading
from typing import Any

from engine.clock import ManualClock
from engine.qmp import Engine
from tests.support.processes import wait_until


class Graph:
    """An engine with a ``throttle-group`` and throttle nodes over ``null-co`` nodes."""

    def __init__(self, limits: dict[str, int], nodes: tuple[str, ...] = ("t0",)) -> None:
        self.engine = Engine()
        self.clock = ManualClock(start=0.0)
        self.engine.graph.io.clock = self.clock
        self.engine.execute("object-add", {"qom-type": "throttle-group", "id": "tg0",
                                           "limits": limits})
        for name in nodes:
            self.engine.execute("blockdev-add", {
                "driver": "throttle", "node-name": name, "throttle-group": "tg0",
                "file": {"driver": "null-co", "node-name": f"{name}-null", "size": 1 << 20}})
        self.went: list[tuple[str, float]] = []
        self.threads: list[threading.Thread] = []

    def io(self, node: str) -> Any:
        return self.engine.graph.nodes[node].io

    def request(self, node: str, label: str, op: str, size: int, *, queued: bool) -> None:
        io = self.io(node)
        write = op != "read"
        before = io.queued(write)

        def run() -> None:
            try:
                if op == "read":
                    io.readinto(0, memoryview(bytearray(size)))
                elif op == "write":
                    io.write(0, bytes(size))
                else:
                    io.write_zeroes(0, size)
            except OSError:         # the node lost its child meanwhile (engine closed)
                self.went.append((f"{label} failed", self.clock.monotonic()))
                return
            self.went.append((label, self.clock.monotonic()))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        if queued:
            wait_until(lambda: io.queued(write) == before + 1, f"{label} queued")
        else:
            thread.join(10)
            assert not thread.is_alive(), f"{label} did not go at once"

    def advance(self, seconds: float, expect: int) -> None:
        """Move the clock; wait until ``expect`` requests have gone in all."""
        self.clock.advance(seconds + 1e-9)
        wait_until(lambda: len(self.went) == expect, f"{expect} requests")

    def close(self) -> None:
        self.engine.close()
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()


def test_reads_writes_and_zero_writes_wait_and_nodes_share_the_group() -> None:
    g = Graph({"iops-total": 2}, ("t0", "t1"))
    try:
        g.request("t0", "r0", "read", 4096, queued=False)    # an empty bucket holds 0.2
        g.request("t1", "w1", "write", 4096, queued=True)
        g.request("t0", "z0", "zeroes", 4096, queued=True)
        g.advance(0.4, 2)
        g.advance(0.5, 3)
        assert [label for label, _ in g.went] == ["r0", "w1", "z0"]
        times = [t for _, t in g.went]
        assert times[1] >= 0.4 and times[2] >= 0.9
        g.io("t0").flush()                                    # flushes are not throttled
    finally:
        g.close()


def test_the_monitor_answers_and_new_limits_apply_while_a_request_waits() -> None:
    g = Graph({"bps-read": 1000})
    try:
        g.request("t0", "r0", "read", 1000, queued=False)
        g.request("t0", "r1", "read", 1000, queued=True)
        # the waiting request holds no lock the monitor needs
        g.engine.execute("qom-set", {"path": "tg0", "property": "limits",
                                     "value": {"bps-read": 1_000_000}})
        assert g.engine.execute("qom-get", {"path": "tg0", "property": "x-bps-read"}
                                ) == 1_000_000
        g.engine.execute("query-named-block-nodes", {})
        g.advance(0.9, 2)                                      # r1 kept its timer
        g.request("t0", "r2", "read", 1000, queued=False)      # new limits: no wait
        assert [label for label, _ in g.went] == ["r0", "r1", "r2"]
    finally:
        g.close()


def test_closing_the_engine_lets_a_waiting_request_go() -> None:
    """A request waiting days for its turn does not hold the engine's close (QEMU drains
    every node as it quits): the request is let go and ends, with the node's child."""
    g = Graph({"iops-total": 1})
    g.request("t0", "r0", "read", 512, queued=False)
    g.request("t0", "r1", "read", 512, queued=True)
    closing = threading.Thread(target=g.engine.close, daemon=True)
    closing.start()
    closing.join(10)
    assert not closing.is_alive()
    for thread in g.threads:
        thread.join(10)
        assert not thread.is_alive()
    assert g.went[0] == ("r0", 0.0)
    assert g.went[1][0] in ("r1", "r1 failed")

"""Clients with work left take turns in rounds of bounded length.

Thirty clients whose reads arrive in one turn of the event loop must not each get a
full step before anyone else is answered: a round over the clients with work left
ends after ``ROUND_SECONDS``, and those it left out go first in the next round. The
clock here is the test's, so the rounds are exact.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.server import server as server_module
from engine.server.connection import (
    MIN_STEP_SECONDS,
    ROUND_SECONDS,
    STEP_SECONDS,
    Connection,
)
from engine.server.server import QMPServer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Client:
    """Works ``cost`` seconds of the test's clock per turn, and wants another turn."""

    def __init__(self, name: int, server: QMPServer, clock: Clock, cost: float,
                 turns: list[tuple[int, float]]) -> None:
        self.name, self.server, self.clock, self.cost, self.turns = \
            name, server, clock, cost, turns

    def take_turn(self, budget: float) -> None:
        self.turns.append((self.name, budget))
        self.clock.now += self.cost
        self.server.want_turn(self)   # type: ignore[arg-type]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(server_module.time, "monotonic", clock)
    return clock


def _clients(count: int, clock: Clock, cost: float) -> tuple[QMPServer, list[tuple[int, float]]]:
    server = QMPServer(object())  # type: ignore[arg-type]   # no loop: rounds run by hand
    turns: list[tuple[int, float]] = []
    for name in range(count):
        server.want_turn(Client(name, server, clock, cost, turns))  # type: ignore[arg-type]
    return server, turns


def test_a_round_ends_on_time_and_whoever_it_left_out_goes_first_next(clock: Clock) -> None:
    server, turns = _clients(10, clock, cost=0.001)
    started = clock.now
    server.take_turns()
    assert [name for name, _ in turns] == [0, 1, 2, 3, 4, 5]
    assert clock.now - started == pytest.approx(ROUND_SECONDS)
    turns.clear()
    server.take_turns()
    assert [name for name, _ in turns] == [6, 7, 8, 9, 0, 1]
    assert server.clients_waiting_turn == 10


def test_each_client_gets_its_share_of_the_round(clock: Clock) -> None:
    for count, share in ((1, STEP_SECONDS), (4, ROUND_SECONDS / 4), (30, MIN_STEP_SECONDS)):
        server, turns = _clients(count, clock, cost=0.0)
        server.take_turns()
        assert [name for name, _ in turns] == list(range(count))   # one turn each
        assert [budget for _, budget in turns] == [pytest.approx(share)] * count


def test_a_client_waiting_for_its_turn_is_not_stepped_by_its_reads() -> None:
    server = QMPServer(object())  # type: ignore[arg-type]
    conn: Any = Connection(server)
    conn._schedule()
    worked: list[float] = []
    conn._work = worked.append
    conn._step()
    assert worked == [] and server.clients_waiting_turn == 1
    server.take_turns()
    assert len(worked) == 1 and server.clients_waiting_turn == 0

"""Requests waiting in a throttle group: one budget, its members served in turn.

QEMU 7.2 keeps, per group and per direction (reads, writes), a *token* naming the member
whose turn it is and at most one armed timer. A request goes at once when its member has
no request queued and the budget allows it; else it queues behind its member's earlier
requests. When the budget allows again (the timer fires), the member holding the turn
lets its first queued request go; each request that goes is accounted, then passes the
turn on to the next member, in the group's order, that has requests queued — so nodes
sharing a group share its budget fairly however many requests each queues.

The engine has no timer thread: the requests that wait fire the group's timer
themselves (whichever of them wakes first once it is due), and they wait on a condition
over the graph's I/O lock, which they give up meanwhile so the monitor can answer and
change the limits. Limits changed by ``qom-set`` reset the bucket levels (QEMU does) and
apply from the next request; a request already waiting keeps its timer. A member being
removed lets its queued requests go unthrottled, as a drained node in QEMU does.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from engine.clock import Clock
from engine.graph.throttle import ThrottleGroup
from engine.graph.throttle_budget import Budget


class _Ticket:
    __slots__ = ("go",)

    def __init__(self) -> None:
        self.go = False


class Member:
    """One ``throttle`` node's place in its group: its queued requests, by direction."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.waiting: tuple[deque[_Ticket], deque[_Ticket]] = (deque(), deque())
        self.pending = [0, 0]
        self.disabled = False


class GroupQueue:
    """A group's budget, members, turns and timers (see the module doc)."""

    def __init__(self, group: ThrottleGroup, clock: Clock, lock: Any) -> None:
        self.group = group
        self.clock = clock
        self._budget = Budget(group.config, clock.monotonic())
        self.cond = threading.Condition(lock)
        self.members: list[Member] = []
        self._tokens: list[Member | None] = [None, None]
        #: the armed timer per direction: (member, due time)
        self._timers: list[tuple[Member, float] | None] = [None, None]

    # -- membership ----------------------------------------------------------------------
    def register(self, member: Member) -> None:
        """A new member takes the first place in the order (QEMU lists the newest first)."""
        with self.cond:
            self.members.insert(0, member)
            for d in (0, 1):
                if self._tokens[d] is None:
                    self._tokens[d] = member

    def unregister(self, member: Member) -> None:
        """The member leaves: its queued requests go unthrottled, the turn moves on."""
        with self.cond:
            member.disabled = True
            self.release(member)
            while any(member.pending):
                self.cond.wait()
            if member in self.members:
                index = self.members.index(member)
                self.members.remove(member)
                for d in (0, 1):
                    if self._tokens[d] is member:
                        self._tokens[d] = (self.members[index % len(self.members)]
                                           if self.members else None)
                        self._schedule_next_of(self._tokens[d], d)

    def release(self, member: Member) -> None:
        """Let every queued request of ``member`` go now (QEMU's drain of the node
        restarts its queues with the limits off); its armed timer is dropped."""
        with self.cond:
            for d in (0, 1):
                timer = self._timers[d]
                held = timer is not None and timer[0] is member
                if held:
                    self._timers[d] = None
                if member.waiting[d]:
                    while member.waiting[d]:
                        member.waiting[d].popleft().go = True
                elif held:          # nobody of its own to pass the turn on
                    self._schedule_next(member, d)
            self.cond.notify_all()

    def poll(self) -> None:
        """Fire the timers that are due now (the waiting requests do so themselves; a
        test that moved a manual clock may call it to see the effect at once)."""
        with self.cond:
            self._fire_due()

    def settled(self) -> bool:
        """Whether every request let go has been accounted (none is on its way)."""
        with self.cond:
            return all(m.pending[d] == len(m.waiting[d]) for m in self.members for d in (0, 1))

    @property
    def budget(self) -> Budget:
        """The budget under the group's current limits: new limits (``qom-set``) start
        with empty buckets, as QEMU's; a timer already armed stays armed."""
        if self._budget.config is not self.group.config:
            self._budget = Budget(self.group.config, self.clock.monotonic())
        return self._budget

    # -- requests ------------------------------------------------------------------------
    def intercept(self, member: Member, size: int, is_write: bool) -> None:
        """Return when a request of ``size`` bytes by ``member`` may go (accounted)."""
        d = int(is_write)
        with self.cond:
            self._fire_due()
            token = self._next_token(member, d)
            if self._schedule_timer(token, d) or member.pending[d]:
                ticket = _Ticket()
                member.waiting[d].append(ticket)
                member.pending[d] += 1
                try:
                    while not ticket.go:
                        self._fire_due()
                        if ticket.go:
                            break
                        timer = self._timers[d]
                        self.clock.wait(self.cond, None if timer is None else
                                        max(timer[1] - self.clock.monotonic(), 0.0))
                finally:
                    member.pending[d] -= 1
                    if not ticket.go:       # interrupted: leave no ticket behind
                        member.waiting[d].remove(ticket)
                    self.cond.notify_all()
            self.budget.account(is_write, size)
            self._schedule_next(member, d)

    def queued(self, member: Member, is_write: bool) -> int:
        """Requests of ``member`` waiting in this direction (for tests and views)."""
        with self.cond:
            return member.pending[int(is_write)]

    # -- QEMU's scheduling, under the lock -------------------------------------------------
    def _following(self, member: Member) -> Member:
        if member not in self.members:
            return self.members[0] if self.members else member
        return self.members[(self.members.index(member) + 1) % len(self.members)]

    def _next_token(self, member: Member, d: int) -> Member:
        """Whose turn it is: the next member after the token holder with requests queued,
        else ``member`` itself."""
        if member.pending[d] and member.disabled:
            return member
        start = self._tokens[d] or member
        token = self._following(start)
        while token is not start and not token.pending[d]:
            token = self._following(token)
        if token is start and not token.pending[d]:
            token = member
        return token

    def _schedule_timer(self, token: Member, d: int) -> bool:
        """Whether a request must wait; arms the group's timer for ``token`` if so."""
        if token.disabled:
            return False
        if self._timers[d] is not None:
            return True
        now = self.clock.monotonic()
        self.budget.leak(now)
        wait = self.budget.wait(bool(d))
        if not wait:
            return False
        self._tokens[d] = token
        self._timers[d] = (token, now + wait)
        return True

    def _schedule_next(self, member: Member, d: int) -> None:
        """After ``member``'s request went: pass the turn to whoever has requests queued."""
        token = self._next_token(member, d)
        if not token.pending[d]:
            return
        if not self._schedule_timer(token, d):
            if self._wake(member, d):
                token = member
            else:
                self._timers[d] = (token, self.clock.monotonic())
            self._tokens[d] = token

    def _schedule_next_of(self, member: Member | None, d: int) -> None:
        if member is not None and member.pending[d]:
            self._schedule_next(member, d)

    def _wake(self, member: Member, d: int) -> bool:
        """Let ``member``'s first queued request go; False when none is queued."""
        if not member.waiting[d]:
            return False
        member.waiting[d].popleft().go = True
        self.cond.notify_all()
        return True

    def _fire_due(self) -> None:
        """Fire the timers that are due: their member's first request goes."""
        now = self.clock.monotonic()
        for d in (0, 1):
            timer = self._timers[d]
            if timer is not None and timer[1] <= now:
                self._timers[d] = None
                if not self._wake(timer[0], d):
                    self._schedule_next(timer[0], d)

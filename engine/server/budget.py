"""The server's memory bound: who may hold a large message.

Every client may hold a small message's worth of input (:data:`SMALL_MESSAGE`) at
any time. A message that grows beyond that needs one of a few *slots*; without one
the client is simply not read (the kernel's socket buffer then pushes back on it)
until a slot is free. A slot is held until the message is answered and its reply
written out, since the parsed value lives that long. With QEMU's 64 MiB limit on a
message, the memory the server holds for input is at most ``slots`` such messages
(and their decoded copies) plus :data:`SMALL_MESSAGE` per client, however many
clients send huge messages at once.

Slots are granted in the order they were asked for. A holder that makes no progress
(sends nothing, reads nothing) for ``large_message_idle`` seconds while another client
waits for its slot is disconnected by the server, so that one client cannot keep
every other client's large messages waiting.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

#: input a client may hold without a slot
SMALL_MESSAGE = 1 << 20
#: clients that may hold a larger message at once
LARGE_MESSAGE_SLOTS = 1
#: seconds a slot holder may make no progress while others wait for its slot
LARGE_MESSAGE_IDLE = 10.0


class SlotHolder(Protocol):
    def slot_granted(self) -> None: ...


class LargeMessageSlots:
    """Grants at most ``count`` large-message slots at once, first come first served."""

    def __init__(self, count: int = LARGE_MESSAGE_SLOTS) -> None:
        self.count = count
        self._holders: set[SlotHolder] = set()
        self._waiting: deque[SlotHolder] = deque()

    @property
    def holders(self) -> int:
        return len(self._holders)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def holding(self) -> list[SlotHolder]:
        return list(self._holders)

    def request(self, who: SlotHolder) -> bool:
        """True if ``who`` holds a slot now; else it waits and is told by
        ``who.slot_granted()`` (called from :meth:`release`)."""
        if who in self._holders:
            return True
        if len(self._holders) < self.count and not self._waiting:
            self._holders.add(who)
            return True
        if who not in self._waiting:
            self._waiting.append(who)
        return False

    def release(self, who: SlotHolder) -> None:
        """``who`` no longer holds (or waits for) a slot; the next waiter gets it."""
        self._holders.discard(who)
        if who in self._waiting:
            self._waiting.remove(who)
        while self._waiting and len(self._holders) < self.count:
            nxt = self._waiting.popleft()
            self._holders.add(nxt)
            nxt.slot_granted()

"""The qtest protocol's clock, for ``-qtest``: the tests drive a virtual clock.

iotests listen on a unix socket and the VM connects to it; each line is a command
and gets one line back. The engine has no guest, so only the clock commands mean
anything: ``clock_step [NS]`` advances the virtual clock (to the next deadline when
no amount is given; the engine has no timers there, so by nothing) and
``clock_set NS`` sets it; both answer ``OK <now>``. Anything else fails as qtest
answers an unknown command.
"""

from __future__ import annotations

import asyncio


class VirtualClock:
    """Nanoseconds of virtual time, moved only by qtest commands."""

    def __init__(self) -> None:
        self.now = 0

    def answer(self, line: str) -> str:
        """The reply to one qtest command line (without the newline)."""
        words = line.split()
        if not words:
            return "FAIL empty command"
        if words[0] == "clock_step":
            step = int(words[1], 0) if len(words) > 1 else 0
            self.now += max(step, 0)
            return f"OK {self.now}"
        if words[0] == "clock_set":
            if len(words) < 2:
                return "FAIL missing argument"
            self.now = max(self.now, int(words[1], 0))
            return f"OK {self.now}"
        return f"FAIL Unknown command '{words[0]}'"


async def serve_qtest(path: str, clock: VirtualClock) -> None:
    """Connect to the tests' qtest socket and answer it until it closes."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                reply = clock.answer(line.decode(errors="replace").strip())
            except ValueError as exc:
                reply = f"FAIL {exc}"
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()

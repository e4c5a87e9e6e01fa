"""One QMP client of the server: its input read in short steps, its commands in
order, its output written no faster than it reads.

The rules that keep one client from stalling the others or growing the server's
memory:

* **Input in steps.** Bytes go to the client's :class:`~engine.server.jsonstream.JSONStream`
  and are read there for at most :data:`STEP_SECONDS` at a time; then the client
  yields to the event loop and continues in its next turn (the server's rounds over
  the clients with work left, see :data:`ROUND_SECONDS`), so a 64 MiB message is
  read in many short steps while every other client is served between them, and one
  turn of the loop does a round's work however many clients send at once. No more
  than :data:`READ_BACKLOG` unread bytes are held: beyond that the socket is not
  read until they are consumed.
* **One command at a time.** Messages are answered in order; while a command runs
  (on the loop if it is quick, else on the :class:`~engine.server.worker.CommandWorker`)
  the next message waits, as in QEMU's monitor.
* **Back-pressure.** While the client has not read what was written to it (the
  transport's buffer is above its high-water mark) no further message of its own is
  answered, so a client that sends but does not read holds a reply's worth of output
  and stops being read — which is what qemu-storage-daemon 7.2 does with such a client.
  Large replies are made in steps as the client reads them
  (:func:`~engine.server.wire.iter_encode`).
* **Events** go to every negotiated client whether it reads or not; a client that
  lets more than ``max_output`` bytes pile up is disconnected, and the log says so.
* **Large messages** need a slot (:mod:`~engine.server.budget`): a client whose
  unanswered input outgrows :data:`~engine.server.budget.SMALL_MESSAGE` without one
  is not read until one is free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.server import wire
from engine.server.budget import SMALL_MESSAGE
from engine.server.jsonstream import JSONParseError, JSONStream
from engine.server.longtext import PendingMessage
from engine.server.protocol import QMPSession, Reply, Request

if TYPE_CHECKING:
    from engine.server.server import QMPServer

log = logging.getLogger(__name__)

#: longest stretch of one client's input work before the loop serves others
STEP_SECONDS = 0.002
#: the shortest such stretch, and the time one round over every client with work left
#: may take: the clients take turns (see ``QMPServer.take_turns``) and with many of
#: them each gets ``ROUND_SECONDS / busy`` (but at least ``MIN_STEP_SECONDS``); a
#: round ends after ``ROUND_SECONDS`` whoever is left, and they go first in the next,
#: so a client that sends a small command waits for one short round, not for two
#: milliseconds of every other client's work
MIN_STEP_SECONDS = 0.0003
ROUND_SECONDS = 0.006
#: the stretch right after a read, when no client waits for its turn or the read is a
#: small command from a client with nothing else to do; other reads only queue the
#: client for its turn, since many clients' reads come in one turn of the loop
READ_STEP_SECONDS = MIN_STEP_SECONDS
#: a read this small, from a client with nothing left to do, is answered right away
LIGHT_READ = 4 << 10
#: unread input held per client before its socket is no longer read
READ_BACKLOG = 256 << 10
#: messages (and parse-error texts) from this size on are handled off the loop and
#: answered in steps
LARGE = 64 << 10
#: the transport's buffer above which the client counts as not reading
HIGH_WATER = 256 << 10


class Connection(asyncio.BufferedProtocol):
    """The server's side of one client connection.

    A buffered protocol: the transport reads into the server's one read buffer (the
    loop runs one callback at a time), and only the bytes read are copied out, instead
    of a 256 KiB buffer allocated for every read.
    """

    def __init__(self, server: QMPServer) -> None:
        self._server = server
        self.session = QMPSession(server.engine, server.known_commands)
        self.stream = JSONStream(defer_long_strings=True, **server.stream_limits)
        self.transport: asyncio.Transport | None = None
        self.peer = "client"
        self.closed = False
        self.holds_slot = False
        self._ready: deque[tuple[Any, int]] = deque()
        #: output made in steps (a large reply), and events queued behind it (with
        #: their sizes: they count towards ``max_output``)
        self._output: deque[tuple[Iterator[bytes], int]] = deque()
        self._queued = 0
        self._busy = False          # a command runs on the worker
        self._writing_paused = False
        self._reading_paused = False
        self._step_scheduled = False
        self._waiting_for_slot = False
        self._halted = False        # after quit: answer nothing more
        #: when the client last sent or read anything (see ``QMPServer._check_slots``)
        self.last_progress = time.monotonic()

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = f"client {peer}" if peer else f"client {id(self):#x}"
        self._server.connection_opened(self)
        transport.write(self._server.greeting)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        stream = self.stream
        light = nbytes <= LIGHT_READ and not stream.backlog and not self._ready
        stream.push(bytes(self._server.read_buffer[:nbytes]))
        self.last_progress = time.monotonic()
        if self._step_scheduled:
            self._update_reading()    # its turn comes
        elif light or not self._server.clients_waiting_turn:
            self._step(READ_STEP_SECONDS)
        else:
            self._schedule()
            self._update_reading()

    def eof_received(self) -> bool:
        return False   # the client hung up: close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ready.clear()
        self._output.clear()
        self._server.connection_closed(self)

    @property
    def writing_paused(self) -> bool:
        """Whether this client's socket is full: nothing more is answered until it reads."""
        return self._writing_paused

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.last_progress = time.monotonic()
        self._step()

    # -- called by the server --------------------------------------------------------------
    def slot_granted(self) -> None:
        self._waiting_for_slot = False
        self.holds_slot = True
        self._update_reading()

    def send_event(self, data: bytes, max_output: int) -> None:
        """Write an event (after any reply still being written)."""
        if self.closed or self.transport is None or not self.session.negotiated:
            return
        if self._output:
            self._output.append((iter((data,)), len(data)))
            self._queued += len(data)
        else:
            self.transport.write(data)
        waiting = self.transport.get_write_buffer_size() + self._queued
        if waiting > max_output:
            self.evict(f"it does not read, and {waiting} bytes of output wait for it")

    def close(self) -> None:
        """Close after what is already written; :meth:`abort` if it is not read."""
        self._ready.clear()
        self._output.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def evict(self, reason: str) -> None:
        log.warning("QMP: dropping %s: %s", self.peer, reason)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        self._ready.clear()
        self._output.clear()
        if self.transport is not None:
            self.transport.abort()

    # -- the work --------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Continue in this client's next turn (see ``QMPServer.take_turns``)."""
        if not self._step_scheduled:
            self._step_scheduled = True
            self._server.want_turn(self)

    def take_turn(self, budget: float) -> None:
        """This client's turn in the round: work for at most ``budget`` seconds."""
        self._step_scheduled = False
        if not (self.closed or self._halted):
            self._work(budget)

    def _step(self, longest: float = STEP_SECONDS) -> None:
        """Do what can be done now, for at most ``longest`` seconds, unless the client
        waits for its turn already."""
        if self._step_scheduled or self.closed or self._halted:
            return
        waiting = self._server.clients_waiting_turn
        self._work(max(MIN_STEP_SECONDS, min(longest, ROUND_SECONDS / (waiting + 1))))

    def _work(self, budget: float) -> None:
        deadline = time.monotonic() + budget
        while True:
            if self._output:
                if not self._write_steps(deadline):
                    break
                continue
            if self._busy or self._writing_paused:
                break
            if self._ready:
                if time.monotonic() >= deadline:
                    self._schedule()
                    break
                message, size = self._ready.popleft()
                self._handle(message, size)
                continue
            if not self.stream.backlog:
                break
            if time.monotonic() >= deadline:
                self._schedule()
                break
            sizes: list[int] = []
            messages = self.stream.pump(deadline, sizes)
            self._ready.extend(zip(messages, sizes, strict=True))
        self._update_reading()

    def _write_steps(self, deadline: float) -> bool:
        """Write the reply being made in steps; False when it must wait (the client
        has not read, or this turn is over)."""
        assert self.transport is not None
        pieces, queued = self._output[0]
        while not self._writing_paused:
            piece = next(pieces, None)
            if piece is None:
                self._output.popleft()
                self._queued -= queued
                return True
            if piece:
                self.transport.write(piece)
            if time.monotonic() >= deadline:
                self._schedule()
                return False
        return False

    def _handle(self, message: Any, size: int) -> None:
        large = size >= LARGE or isinstance(message, PendingMessage) or (
            isinstance(message, JSONParseError) and len(message.desc) >= LARGE)
        if large:   # checking it may hash its keys: leave all of it to the worker
            self._busy = True
            self._server.worker.submit(self._check_and_run, message, self._large_done)
            return
        checked = self.session.check(message)
        if isinstance(checked, Reply):
            self._reply(checked, None)
            return
        reply = self._server.run_inline(self.session, checked)
        if reply is not None:
            self._reply(reply, None)
            return
        self._busy = True
        self._server.worker.submit(self._run_and_encode, checked, self._done)

    # on the worker thread
    def _check_and_run(self, message: Any) -> Reply:
        if isinstance(message, PendingMessage):
            message = message.complete()
        elif isinstance(message, JSONParseError):
            message = message.completed()
        checked = self.session.check(message)
        return checked if isinstance(checked, Reply) else self.session.run(checked)

    def _run_and_encode(self, request: Request) -> tuple[Reply, bytes]:
        reply = self.session.run(request)
        return reply, reply.encode()

    # back on the loop
    def _done(self, result: tuple[Reply, bytes] | BaseException) -> None:
        self._busy = False
        if isinstance(result, BaseException):
            result = (_internal_error(result), b"")
        reply, data = result
        if not self.closed:
            self._reply(reply, data or None)
            self._step()

    def _large_done(self, result: Reply | BaseException) -> None:
        self._busy = False
        reply = _internal_error(result) if isinstance(result, BaseException) else result
        if not self.closed:
            self._reply(reply, None, stepped=True)
            self._step()

    def _reply(self, reply: Reply, data: bytes | None, *, stepped: bool = False) -> None:
        assert self.transport is not None
        self._server.flush_events()   # what happened before this reply goes first
        if self.closed:
            return
        if stepped:
            self._output.append((wire.iter_encode(reply.message), 0))
        else:
            self.transport.write(data if data is not None else reply.encode())
        if reply.quit:
            self._halted = True
            self._server.request_stop()

    def _update_reading(self) -> None:
        """Read the socket only while this client may hold more input."""
        transport = self.transport
        if transport is None or self.closed:
            return
        stream = self.stream
        wanted = stream.backlog < READ_BACKLOG
        if stream.pending > SMALL_MESSAGE:
            if not self.holds_slot and not self._waiting_for_slot:
                if self._server.request_slot(self):
                    self.holds_slot = True
                else:
                    self._waiting_for_slot = True
            wanted = wanted and self.holds_slot
        elif self.holds_slot and not self._busy and not self._output and not self._ready:
            self.holds_slot = False
            self._server.slots.release(self)
        if wanted and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        elif not wanted and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()


def _internal_error(exc: BaseException) -> Reply:
    """The answer when the server itself failed (a bug): said, logged, survived."""
    log.error("QMP: a command failed in the server", exc_info=exc)
    return Reply(wire.failure("GenericError", f"Internal error: {exc}"))

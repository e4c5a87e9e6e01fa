"""The QMP server: the engine behind unix sockets, TCP or socket pairs, on asyncio.

Each connection is a :class:`~engine.server.connection.Connection` (its own session,
stream and output; see there for how no client can stall the others). Commands run on
the event loop itself while they are quick and the engine is free; commands seen to be
slow, ones that write new images, ones carrying a large message, and any command
while the engine is busy (a job holds its lock) run on one
:class:`~engine.server.worker.CommandWorker` thread, so that they do not hold up the
other clients' input, answers or events; the engine serialises commands with its own
lock. Events from the engine (which may come from a job's thread) are written to
every client that has finished negotiation, in the order they happened; events
caused by a command, and any that happened before it, are written before that
command's reply, as QEMU does.

A client that goes away mid-command loses only its reply: the command finishes, and
so do jobs it started. ``quit`` from any client answers ``{}``, then the server
closes every connection — within :data:`CLOSE_GRACE` seconds even if a client reads
nothing — and :meth:`QMPServer.serve_forever` returns; the owner then closes the
engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from engine.server import wire
from engine.server.budget import LARGE_MESSAGE_IDLE, LARGE_MESSAGE_SLOTS, LargeMessageSlots
from engine.server.connection import MIN_STEP_SECONDS, ROUND_SECONDS, STEP_SECONDS, Connection
from engine.server.protocol import CAPABILITIES, QMPSession, Reply, Request
from engine.server.worker import CommandWorker

log = logging.getLogger(__name__)

#: A client that lets more than this pile up unread (events) is disconnected.
MAX_OUTPUT_BUFFER = 4 << 20
#: Bytes read from a connection at a time.
READ_BUFFER = 256 << 10
#: How long closing waits for clients to take what was written to them.
CLOSE_GRACE = 0.3
#: Commands that write and flush new image files run on the worker; every other command
#: runs on the loop when the engine is free — serialised by the engine's lock anyway,
#: and a thread hand-over costs more than most commands — until one takes longer than
#: :data:`INLINE_SECONDS` (a large graph, a slow disk): then that command runs on the
#: worker for its next :data:`_INLINE_PENALTY` calls.
WORKER_COMMANDS = frozenset({"blockdev-snapshot-sync", "blockdev-snapshot", "transaction"})
INLINE_SECONDS = 0.002
_INLINE_PENALTY = 64


class ServedEngine(Protocol):
    """The engine interface the server uses (see CONTRACTS: engine QMP core)."""

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...

    def add_listener(self, callback: Callable[[dict[str, Any]], None]
                     ) -> Callable[[], None]: ...


class ServeError(Exception):
    """The server could not listen where it was asked to (a clear sentence)."""


class QMPServer:
    """Serve one engine to any number of QMP clients on the running event loop."""

    def __init__(self, engine: ServedEngine, *, max_output_buffer: int = MAX_OUTPUT_BUFFER,
                 large_message_slots: int = LARGE_MESSAGE_SLOTS,
                 large_message_idle: float = LARGE_MESSAGE_IDLE,
                 **stream_limits: int) -> None:
        """``stream_limits``: :class:`~engine.server.jsonstream.JSONStream` limits
        (``max_nesting``, ``max_token_size``, ``max_token_count``)."""
        self.engine = engine
        self.max_output_buffer = max_output_buffer
        self.stream_limits = stream_limits
        self.slots = LargeMessageSlots(large_message_slots)
        self.large_message_idle = large_message_idle
        self._slot_watch: asyncio.TimerHandle | None = None
        self.known_commands: Callable[[], list[str]] | None = getattr(engine, "commands", None)
        self.greeting = b""
        #: where every connection's transport reads into (see ``Connection``)
        self.read_buffer = memoryview(bytearray(READ_BUFFER))
        self.worker: CommandWorker = None  # type: ignore[assignment]  # set by start()
        self._engine_lock: Any = getattr(engine, "lock", None)
        self._penalty: dict[str, int] = {}
        #: clients whose work was cut short, in the order they take their next turn
        self._turns: deque[Connection] = deque()
        self._round_scheduled = False
        self._connections: set[Connection] = set()
        self._listeners: list[asyncio.AbstractServer] = []
        self._unix_paths: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop: asyncio.Event | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        self._events_scheduled = False
        self._all_closed: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Prepare the greeting and subscribe to events (call before listening)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop = asyncio.Event()
        self.worker = CommandWorker(self._loop)
        version = await self._loop.run_in_executor(None, self.engine.execute,
                                                   "query-version", None)
        self.greeting = wire.encode(wire.greeting(version, list(CAPABILITIES)))
        self._unsubscribe = self.engine.add_listener(self._on_event)

    async def listen_unix(self, path: str | os.PathLike[str]) -> str:
        """Listen on a unix socket only its owner can use; return its path."""
        assert self._loop is not None, "start() first"
        sock = bind_private_unix_socket(os.fspath(path))
        server = await self._loop.create_unix_server(self._connection, sock=sock)
        self._listeners.append(server)
        self._unix_paths.append(os.path.abspath(path))
        return os.path.abspath(path)

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Listen on TCP (the caller picks the host; the CLI defaults to loopback)."""
        assert self._loop is not None, "start() first"
        try:
            server = await self._loop.create_server(self._connection, host, port)
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._listeners.append(server)
        address = server.sockets[0].getsockname()
        return address[0], address[1]

    async def add_connection(self, sock: socket.socket) -> None:
        """Serve one already-connected socket (the server end of a socket pair)."""
        assert self._loop is not None, "start() first"
        await self._loop.connect_accepted_socket(self._connection, sock)

    async def serve_forever(self) -> None:
        """Run until ``quit`` or :meth:`request_stop`, then close every connection."""
        assert self._stop is not None, "start() first"
        await self._stop.wait()
        await self.close()

    def request_stop(self) -> None:
        """Ask the server to stop (safe from any thread and from signal handlers)."""
        if self._loop is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):   # the loop has closed already
            self._loop.call_soon_threadsafe(self._stop.set)

    async def close(self) -> None:
        """Stop listening, disconnect every client, stop receiving events.

        Clients get :data:`CLOSE_GRACE` seconds to take what was written to them
        (the ``quit`` reply); one that does not read is then cut off.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for server in self._listeners:
            server.close()
        self._all_closed = asyncio.Event()
        for conn in list(self._connections):
            conn.close()
        if self._connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), CLOSE_GRACE)
        for conn in list(self._connections):
            conn.abort()
        if self._connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), CLOSE_GRACE)
        for server in self._listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), CLOSE_GRACE)
        self._listeners.clear()
        if self._slot_watch is not None:
            self._slot_watch.cancel()
            self._slot_watch = None
        if self.worker is not None:
            self.worker.stop()
        for path in self._unix_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._unix_paths.clear()

    @property
    def client_count(self) -> int:
        return len(self._connections)

    def held_back(self) -> int:
        """How many clients the server answers no further until they read what it has
        answered them (their replies fill the socket; their commands wait)."""
        return sum(1 for conn in list(self._connections) if conn.writing_paused)

    # -- connections -------------------------------------------------------------------
    def _connection(self) -> Connection:
        return Connection(self)

    def connection_opened(self, conn: Connection) -> None:
        self._connections.add(conn)

    def connection_closed(self, conn: Connection) -> None:
        self._connections.discard(conn)
        if conn.holds_slot:
            conn.holds_slot = False
        self.slots.release(conn)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    def request_slot(self, conn: Connection) -> bool:
        """A large-message slot for ``conn`` now (True), or later (``slot_granted``)."""
        if self.slots.request(conn):
            return True
        self._watch_slots()
        return False

    def _watch_slots(self) -> None:
        if self._slot_watch is None and self._loop is not None:
            self._slot_watch = self._loop.call_later(self.large_message_idle / 4,
                                                     self._check_slots)

    def _check_slots(self) -> None:
        """Disconnect slot holders that hold others up and make no progress."""
        self._slot_watch = None
        if not self.slots.waiting:
            return
        now = time.monotonic()
        for holder in self.slots.holding():
            assert isinstance(holder, Connection)
            idle = now - holder.last_progress
            if idle >= self.large_message_idle:
                holder.evict(f"it holds a large message and has neither sent nor read "
                             f"anything for {idle:.0f} s while {self.slots.waiting} other "
                             f"client(s) wait to send one")
        if self.slots.waiting:
            self._watch_slots()

    # -- turns ---------------------------------------------------------------------------
    @property
    def clients_waiting_turn(self) -> int:
        """Clients whose work continues in a later turn."""
        return len(self._turns)

    def want_turn(self, conn: Connection) -> None:
        """Give ``conn`` a turn in the next round (see :meth:`take_turns`)."""
        self._turns.append(conn)
        if not self._round_scheduled and self._loop is not None:
            self._round_scheduled = True
            self._loop.call_soon(self.take_turns)

    def take_turns(self) -> None:
        """One round: each waiting client works for its share of :data:`ROUND_SECONDS`,
        in the order they asked; whoever the round's end leaves out goes first in the
        next round, which comes after the loop has read its sockets again. So one turn
        of the loop does at most a round's work, however many clients have work."""
        self._round_scheduled = False
        turns = self._turns
        share = max(MIN_STEP_SECONDS, min(STEP_SECONDS, ROUND_SECONDS / max(len(turns), 1)))
        ends = time.monotonic() + ROUND_SECONDS
        for _ in range(len(turns)):
            if time.monotonic() >= ends:
                break
            turns.popleft().take_turn(share)
        if turns and not self._round_scheduled and self._loop is not None:
            self._round_scheduled = True
            self._loop.call_soon(self.take_turns)

    def run_inline(self, session: QMPSession, request: Request) -> Reply | None:
        """Run a quick command on the loop, or None: it goes to the worker."""
        command = request.command
        if request.oob or command in WORKER_COMMANDS:
            return None
        penalty = self._penalty.get(command)
        if penalty:
            self._penalty[command] = penalty - 1
            return None
        lock = self._engine_lock
        if lock is not None and not lock.acquire(blocking=False):
            return None   # a command or job holds the engine: do not wait on the loop
        try:
            started = time.perf_counter()
            reply = session.run(request)
            spent = time.perf_counter() - started
        finally:
            if lock is not None:
                lock.release()
        if spent > INLINE_SECONDS:
            self._penalty[command] = _INLINE_PENALTY
        return reply

    # -- events ------------------------------------------------------------------------
    def _on_event(self, event: dict[str, Any]) -> None:
        if threading.get_ident() == self._loop_thread:
            self.flush_events()
            self._broadcast(event)
            return
        loop = self._loop
        if loop is None:
            return
        with self._events_lock:
            self._events.append(event)
            if self._events_scheduled:
                return
            self._events_scheduled = True
        with contextlib.suppress(RuntimeError):  # loop closed meanwhile
            loop.call_soon_threadsafe(self.flush_events)

    def flush_events(self) -> None:
        """Write the events other threads reported so far (on the loop)."""
        with self._events_lock:
            events, self._events = self._events, []
            self._events_scheduled = False
        for event in events:
            self._broadcast(event)

    def _broadcast(self, event: dict[str, Any]) -> None:
        data = wire.encode(wire.event(event))
        for conn in list(self._connections):
            conn.send_event(data, self.max_output_buffer)


def bind_private_unix_socket(path: str) -> socket.socket:
    """A listening unix socket at ``path`` that only its owner can connect to.

    The socket is created with mode 0600 inside a fresh 0700 directory next to
    ``path`` and then renamed into place, so it is never reachable with wider
    permissions, and it is already listening when it appears (waiting for the path to
    exist is a valid readiness check). A stale socket at ``path`` is replaced; a live
    one or any other file is an error.
    """
    path = os.path.abspath(path)
    _refuse_existing(path)
    parent = os.path.dirname(path)
    try:
        private_dir = tempfile.mkdtemp(prefix=".bg-", dir=parent)
    except OSError as exc:
        raise ServeError(f"cannot create socket in {parent}: {exc.strerror}") from exc
    temp_path = os.path.join(private_dir, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(temp_path)) >= 108:
            _bind_with_umask(sock, path)
        else:
            sock.bind(temp_path)
            os.chmod(temp_path, 0o600)
            sock.listen(128)
            os.rename(temp_path, path)
        return sock
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        with contextlib.suppress(OSError):
            os.rmdir(private_dir)


def _bind_with_umask(sock: socket.socket, path: str) -> None:
    """Paths too long for the private-directory detour: bind under umask 0177."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(128)


def _refuse_existing(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServeError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # stale: nobody listens; it will be replaced
    finally:
        probe.close()
    raise ServeError(f"{path} is in use by another server")

"""The QMP server: the engine behind unix sockets, TCP or socket pairs, on asyncio.

Each connection gets the greeting, its own :class:`~engine.server.protocol.QMPSession`
(negotiation state) and its own :class:`~engine.server.jsonstream.JSONStream`
(framing). A connection's commands run one after another, in a worker thread so
that a slow command never stalls the other clients' input or the events; the engine
serialises commands with its own lock. Events from the engine (which may come from a
job's thread) are queued onto the loop and written to every client that has
finished negotiation, in the order they happened; events caused by a command are
written before that command's reply, as QEMU does.

A client that goes away mid-command loses only its reply: the command finishes, and
so do jobs it started. A client that stops reading is dropped once more than
:data:`MAX_OUTPUT_BUFFER` bytes wait for it, so it cannot make the server hoard
memory. ``quit`` from any client answers ``{}``, then closes every connection and
ends :meth:`QMPServer.serve_forever`; the owner then closes the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import tempfile
from collections.abc import Callable
from typing import Any, Protocol

from engine.server import wire
from engine.server.jsonstream import JSONStream
from engine.server.protocol import CAPABILITIES, QMPSession, Reply

log = logging.getLogger(__name__)

#: Bytes read from a connection at a time.
READ_CHUNK = 256 * 1024
#: A client that leaves more than this unread is disconnected.
MAX_OUTPUT_BUFFER = 64 << 20


class ServedEngine(Protocol):
    """The engine interface the server uses (see CONTRACTS: engine QMP core)."""

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...

    def add_listener(self, callback: Callable[[dict[str, Any]], None]
                     ) -> Callable[[], None]: ...


class ServeError(Exception):
    """The server could not listen where it was asked to (a clear sentence)."""


class _Connection:
    def __init__(self, writer: asyncio.StreamWriter, session: QMPSession,
                 max_output_buffer: int) -> None:
        self.writer = writer
        self.session = session
        self.max_output_buffer = max_output_buffer

    def send(self, data: bytes) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.max_output_buffer:
            log.warning("dropping a QMP client that does not read its replies")
            transport.abort()
            return
        self.writer.write(data)


class QMPServer:
    """Serve one engine to any number of QMP clients on the running event loop."""

    def __init__(self, engine: ServedEngine, *, max_output_buffer: int = MAX_OUTPUT_BUFFER,
                 **stream_limits: int) -> None:
        """``stream_limits``: :class:`~engine.server.jsonstream.JSONStream` limits
        (``max_nesting``, ``max_token_size``, ``max_token_count``)."""
        self.engine = engine
        self._max_output_buffer = max_output_buffer
        self._stream_limits = stream_limits
        self._connections: set[_Connection] = set()
        self._listeners: list[asyncio.AbstractServer] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._unix_paths: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._greeting = b""

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Prepare the greeting and subscribe to events (call before listening)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        version = await self._loop.run_in_executor(None, self.engine.execute,
                                                   "query-version", None)
        self._greeting = wire.encode(wire.greeting(version, list(CAPABILITIES)))
        self._unsubscribe = self.engine.add_listener(self._on_event)

    async def listen_unix(self, path: str | os.PathLike[str]) -> str:
        """Listen on a unix socket only its owner can use; return its path."""
        sock = bind_private_unix_socket(os.fspath(path))
        server = await asyncio.start_unix_server(self._accept, sock=sock, limit=READ_CHUNK)
        self._listeners.append(server)
        self._unix_paths.append(os.path.abspath(path))
        return os.path.abspath(path)

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Listen on TCP (the caller picks the host; the CLI defaults to loopback)."""
        try:
            server = await asyncio.start_server(self._accept, host, port, limit=READ_CHUNK)
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._listeners.append(server)
        address = server.sockets[0].getsockname()
        return address[0], address[1]

    async def add_connection(self, sock: socket.socket) -> None:
        """Serve one already-connected socket (the server end of a socket pair)."""
        reader, writer = await asyncio.open_connection(sock=sock, limit=READ_CHUNK)
        self._spawn(reader, writer)

    async def serve_forever(self) -> None:
        """Run until ``quit`` or :meth:`request_stop`, then close every connection."""
        assert self._stop is not None, "start() first"
        await self._stop.wait()
        await self.close()

    def request_stop(self) -> None:
        """Ask the server to stop (safe from any thread and from signal handlers)."""
        if self._loop is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)

    async def close(self) -> None:
        """Stop listening, disconnect every client, stop receiving events."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for server in self._listeners:
            server.close()
        for conn in list(self._connections):
            conn.writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        for server in self._listeners:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._listeners.clear()
        for path in self._unix_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._unix_paths.clear()

    @property
    def client_count(self) -> int:
        return len(self._connections)

    # -- connections -------------------------------------------------------------------
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(reader, writer)

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._loop is not None
        commands = getattr(self.engine, "commands", None)
        conn = _Connection(writer, QMPSession(self.engine, commands), self._max_output_buffer)
        self._connections.add(conn)
        stream = JSONStream(**self._stream_limits)
        try:
            conn.send(self._greeting)
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                for message in stream.feed(data):
                    checked = conn.session.check(message)
                    if isinstance(checked, Reply):
                        reply = checked
                    else:
                        reply = await self._loop.run_in_executor(None, conn.session.run,
                                                                 checked)
                    conn.send(reply.encode())
                    if reply.quit:
                        with contextlib.suppress(ConnectionError):
                            await writer.drain()
                        self.request_stop()
                        return
                    # Back-pressure per reply, not per read: one read can hold
                    # thousands of pipelined commands, and a client that sends them
                    # faster than it reads must be slowed down, not dropped.
                    await writer.drain()
                if writer.transport.is_closing():
                    break
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; its commands and jobs carry on
        finally:
            self._connections.discard(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- events ------------------------------------------------------------------------
    def _on_event(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closed meanwhile
            loop.call_soon_threadsafe(self._broadcast, event)

    def _broadcast(self, event: dict[str, Any]) -> None:
        data = wire.encode(wire.event(event))
        for conn in list(self._connections):
            if conn.session.negotiated:
                conn.send(data)


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

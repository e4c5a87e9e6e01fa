"""The bundled engine as a QMP endpoint inside this process.

The editor speaks to every peer through one qemu.qmp ``QMPClient``; for the bundled
engine there is no daemon to connect to, so :class:`InProcessServer` runs the engine
and a :class:`~engine.server.server.QMPServer` on a thread of its own, with its own
asyncio loop, and hands out the client ends of ``socket.socketpair()``::

    server = InProcessServer()            # or InProcessServer(engine=Engine(root=...))
    sock = server.connect()               # a connected socket.socket
    client = QMPClient("bundled")
    await client.connect(sock)            # greeting + negotiation, as with QEMU
    ...
    await client.disconnect()
    server.close()                        # stops the thread, closes the images

Because the bytes are QMP, everything above the socket is the same code path as for
a remote QEMU. The server's loop is separate from the caller's (a Qt loop under
qasync, a test's loop), so neither can stall the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from pathlib import Path

from engine.qmp import Engine
from engine.server.budget import LARGE_MESSAGE_IDLE, LARGE_MESSAGE_SLOTS
from engine.server.server import MAX_OUTPUT_BUFFER, QMPServer


class InProcessServer:
    """An engine and its QMP server on a private thread; ``connect()`` for clients."""

    def __init__(self, engine: Engine | None = None, *, root: Path | None = None,
                 close_engine: bool = True, max_output_buffer: int = MAX_OUTPUT_BUFFER,
                 large_message_slots: int = LARGE_MESSAGE_SLOTS,
                 large_message_idle: float = LARGE_MESSAGE_IDLE,
                 **stream_limits: int) -> None:
        """The limits and large-message slots go to
        :class:`~engine.server.server.QMPServer`."""
        if engine is None:
            engine = Engine(root=root)
        self.engine = engine
        self._close_engine = close_engine
        self._loop = asyncio.new_event_loop()
        self._server = QMPServer(engine, max_output_buffer=max_output_buffer,
                                 large_message_slots=large_message_slots,
                                 large_message_idle=large_message_idle, **stream_limits)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="blockgraph-qmp", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._server.start())
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_until_complete(self._server.serve_forever())
        finally:
            if self._close_engine:
                self.engine.close()
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def held_back(self) -> int:
        """Clients the server answers no further until they read (see QMPServer)."""
        return self._server.held_back()

    def connect(self) -> socket.socket:
        """A new client connection: the client end of a socket pair, already served."""
        if not self.running:
            raise RuntimeError("the in-process QMP server has stopped")
        client_end, server_end = socket.socketpair()
        future = asyncio.run_coroutine_threadsafe(
            self._server.add_connection(server_end), self._loop)
        try:
            future.result(timeout=10)
        except BaseException:
            client_end.close()
            server_end.close()
            raise
        return client_end

    def close(self, timeout: float = 30) -> None:
        """Stop the server (disconnecting clients) and close the engine's images."""
        if self._thread.is_alive():
            self._server.request_stop()
            self._thread.join(timeout)

    def __enter__(self) -> InProcessServer:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.close()

"""The QMP peer that tours and replays talk to: run a command, wait for a job, read the graph.

Tours and replays only need four things from a peer, so they are written against the
small :class:`ScriptPeer` protocol (asyncio, no Qt):

* ``await execute(command, arguments)`` → the ``return`` value, or raises
  :class:`PeerCommandError` (``error_class``, ``desc``: QEMU's answer);
* ``await wait_job(job_id, until, timeout)`` → the status reached; raises
  :class:`PeerJobError` if the job failed or was cancelled first. Statuses are recorded
  from the moment the peer connected, so a job whose events arrive before the reply of
  the command that started it is still seen;
* ``await graph()`` → a fresh :class:`~engine.graph.snapshot.GraphSnapshot`;
* ``await close()``.

:class:`SessionPeer` adapts a :class:`gui.session.Session` — the editor's one QMP client,
used for a remote QEMU and for the bundled engine alike (through the in-process QMP
server). :func:`open_peer` builds one for an address (``unix:PATH``, ``tcp:H:P``) or for a
fresh bundled engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine.graph.snapshot import GraphSnapshot
from gui.session import CommandFailed, Session
from gui.session.peers import BundledPeer


class PeerError(Exception):
    """Base of the errors a script peer raises."""


class PeerCommandError(PeerError):
    """The peer answered a command with a QMP error."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(desc)
        self.command = command
        self.error_class = error_class
        self.desc = desc


class PeerJobError(PeerError):
    """A job ended badly (failed, cancelled) or did not reach the status in time."""

    def __init__(self, job_id: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class ScriptPeer(Protocol):
    label: str

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any: ...

    async def wait_job(self, job_id: str, until: Sequence[str],
                       timeout: float = 120.0) -> str: ...

    async def graph(self) -> GraphSnapshot: ...

    async def close(self) -> None: ...


class JobWatcher:
    """Job statuses seen in events, per job id, in order (reset when a job is created).

    Fed with QMP event dicts from any thread through :meth:`feed` (thread-safe via the
    loop); waited on from the loop with :meth:`wait`.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[str]] = {}
        self.errors: dict[str, str] = {}
        self._changed = asyncio.Condition()

    async def on_event(self, event: Mapping[str, Any]) -> None:
        name = event.get("event")
        data = event.get("data") or {}
        if name == "JOB_STATUS_CHANGE":
            job, status = str(data.get("id")), str(data.get("status"))
            if status == "created":
                self.history[job] = []
                self.errors.pop(job, None)
            self.history.setdefault(job, []).append(status)
        elif name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            job = str(data.get("device"))
            if data.get("error"):
                self.errors[job] = str(data["error"])
            elif name == "BLOCK_JOB_CANCELLED":
                self.errors[job] = "cancelled"
        else:
            return
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, job_id: str, until: Sequence[str], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                seen = self.history.get(job_id, [])
                # a job that failed or was cancelled does not count as having got there
                if job_id in self.errors and ("concluded" in seen or "null" in seen):
                    raise PeerJobError(job_id, f"job {job_id} ended with an error: "
                                               f"{self.errors[job_id]}")
                for status in seen:
                    if status in until:
                        return status
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerJobError(job_id, f"job {job_id} did not become "
                                               f"{'/'.join(until)} within {timeout:g} s "
                                               f"(seen: {', '.join(seen) or 'nothing'})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)


class SessionPeer:
    """A :class:`gui.session.Session` as a script peer (events through ``on_event``)."""

    def __init__(self, session: Any, *, owned: bool = True, on_close: Any = None) -> None:
        self.session = session
        self.label = str(getattr(getattr(session, "endpoint", None), "label", "peer"))
        self.jobs = JobWatcher()
        self._owned = owned
        self._on_close = on_close
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = session.on_event(self._event)

    def _event(self, event: Mapping[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.jobs.on_event(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        try:
            return await self.session.execute(command, dict(arguments) if arguments else None)
        except CommandFailed as exc:
            raise PeerCommandError(command, exc.error_class, exc.desc) from None

    async def wait_job(self, job_id: str, until: Sequence[str], timeout: float = 120.0) -> str:
        return await self.jobs.wait(job_id, until, timeout)

    async def graph(self) -> GraphSnapshot:
        snapshot: GraphSnapshot = await self.session.refresh(force=True)
        return snapshot

    async def close(self) -> None:
        self._unsubscribe()
        if self._owned:
            await self.session.close()
        if self._on_close is not None:
            self._on_close()

    def abandon(self) -> None:
        """Give the peer up without awaiting (no event loop is left): a bundled engine
        behind it still closes its images; a remote one sees the socket close when
        the process ends."""
        self._unsubscribe()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


async def open_peer(address: str | None = None, *, poll_interval: float | None = None,
                    root: str | None = None) -> SessionPeer:
    """Connect a session to ``address``, or (``None``) to a fresh bundled engine.

    The bundled engine runs behind the in-process QMP server and is closed with the peer.
    """
    bundled = BundledPeer(Path(root) if root else None) if address is None else None
    endpoint = bundled.endpoint if bundled is not None else address
    assert endpoint is not None  # an address, or the bundled engine's
    session = Session(endpoint,
                      auto_reconnect=False, poll_interval=poll_interval)
    try:
        await session.connect()
    except BaseException:
        await session.close()
        if bundled is not None:
            bundled.close()
        raise
    return SessionPeer(session, on_close=bundled.close if bundled is not None else None)

"""The session: one QMP connection to one peer, and the live graph read from it.

See :mod:`gui.session` for the public API. Its parts: :mod:`~gui.session.link` (one
connection, time limits), :mod:`~gui.session.graph_reader` (the cheapest queries that
answer), :mod:`~gui.session.jobs` (job statuses and progress),
:mod:`~gui.session.sent_options` (what this client told the peer). Internals worth
knowing:

* Background tasks (event drain, update loop, connection watch, reconnect) are
  created with :meth:`Session._spawn` and kept in ``self._tasks`` — strong references,
  because the event loop (and qasync's) holds only weak ones.
* One task drains events; each event and each own command says what it calls for
  (:mod:`~gui.session.updates`) and wakes the update loop, the only place background
  reads happen — under the command lock, so that no query can slip in between a
  ``blockdev-create`` and the end of its job.
* A dropped connection is noticed by the watch task through qemu.qmp's runstate; the
  session then reports ``LOST`` ("disconnected — outcome unknown"), never raises into
  the caller, and reconnects with back-off when ``auto_reconnect`` is on.

Planning and running plans are not the session's: :mod:`gui.executor` runs a plan on
a session (send, wait for jobs, read back, compare). What is left here, slightly
over 500 lines, is one state machine — connect, watch, reconnect, the update loop and the
command lock — whose tasks and lock must be seen together to be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from qemu.qmp import EventListener

from engine.graph.snapshot import GraphSnapshot
from gui.session.address import Endpoint, parse_address
from gui.session.capabilities import PeerCapabilities
from gui.session.client import background_traffic
from gui.session.errors import ConnectFailed, Disconnected, SessionError
from gui.session.graph_reader import ReadState, read_graph, read_jobs
from gui.session.jobs import JobProgress, JobTracker
from gui.session.link import LINK_ERRORS, QmpLink, Stalled
from gui.session.observers import Observers
from gui.session.sent_options import SentOptions
from gui.session.state import ConnectionState, ConnectionStatus
from gui.session.traffic import TrafficEntry, TrafficLog
from gui.session.updates import Need, need_for_command, need_for_event

log = logging.getLogger(__name__)

#: the longest wait between re-reads of a graph that still shows an ended job
STALE_JOB_READ_CAP = 5.0


class Session:
    """A live connection to a QMP peer (see the package docstring for the API)."""

    def __init__(
        self,
        endpoint: Endpoint | str,
        *,
        auto_reconnect: bool = True,
        poll_interval: float | None = 60.0,
        job_poll_interval: float = 1.0,
        traffic_limit: int = 5000,
        reconnect_delays: tuple[float, float] = (0.1, 5.0),
        job_timeout: float = 300.0,
        command_timeout: float | None = 60.0,
    ) -> None:
        self.endpoint = parse_address(endpoint) if isinstance(endpoint, str) else endpoint
        self.auto_reconnect = auto_reconnect
        #: the safety re-read, for changes no event reports (None: never); see updates
        self.poll_interval = poll_interval
        #: how often a running job's progress is asked for
        self.job_poll_interval = job_poll_interval
        self.reconnect_delays = reconnect_delays
        self.job_timeout = job_timeout
        #: a peer that accepts but never greets or never answers is treated as gone after
        #: this long (None: wait forever); jobs are waited for separately (job_timeout)
        self.command_timeout = command_timeout
        self.traffic = TrafficLog(traffic_limit)
        self._graph_changed: Observers[GraphSnapshot] = Observers("graph_changed")
        self._job_progress: Observers[JobProgress] = Observers("job_progress")
        self._connection: Observers[ConnectionState] = Observers("connection_state")
        self._traffic: Observers[TrafficEntry] = Observers("traffic")
        self._events: Observers[Mapping[str, Any]] = Observers("event")
        self._state = ConnectionState(ConnectionStatus.DISCONNECTED, self.endpoint.label)
        self._link: QmpLink | None = None
        self._caps: PeerCapabilities | None = None
        self._read = ReadState()
        self._read_lock = asyncio.Lock()
        self._command_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._need = Need.NOTHING
        self._poll_deadline: float | None = None
        self._last_graph_read = 0.0
        self._stale_reads = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._reconnect_task: asyncio.Task[Any] | None = None
        self._closing = False
        self._jobs = JobTracker(self._job_progress.emit)
        self._sent = SentOptions()

    # -- observers ----------------------------------------------------------------------
    def on_graph_changed(self, cb: Callable[[GraphSnapshot], None]) -> Callable[[], None]:
        return self._graph_changed.add(cb)

    def on_job_progress(self, cb: Callable[[JobProgress], None]) -> Callable[[], None]:
        return self._job_progress.add(cb)

    def on_connection_state(self, cb: Callable[[ConnectionState], None]) -> Callable[[], None]:
        return self._connection.add(cb)

    def on_traffic(self, cb: Callable[[TrafficEntry], None]) -> Callable[[], None]:
        return self._traffic.add(cb)

    def on_event(self, cb: Callable[[Mapping[str, Any]], None]) -> Callable[[], None]:
        return self._events.add(cb)

    # -- state --------------------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state.status is ConnectionStatus.CONNECTED

    @property
    def capabilities(self) -> PeerCapabilities | None:
        return self._caps

    @property
    def snapshot(self) -> GraphSnapshot | None:
        return self._read.snapshot

    @property
    def jobs(self) -> Mapping[str, JobProgress]:
        return self._jobs.jobs

    @property
    def added_options(self) -> Mapping[str, Mapping[str, Any]]:
        """Options of nodes this session added or reopened, by node-name (newest wins)."""
        return self._sent.by_node

    def _set_state(self, status: ConnectionStatus, message: str = "") -> None:
        self._state = ConnectionState(status, self.endpoint.label, message, self._caps)
        self._connection.emit(self._state)

    # -- connection ---------------------------------------------------------------------
    async def connect(self) -> GraphSnapshot:
        """Connect, detect the peer's capabilities, read the graph. Raises ConnectFailed."""
        if self._closing:
            raise SessionError("session is closed")
        if self.connected:
            assert self._read.snapshot is not None
            return self._read.snapshot
        self._set_state(ConnectionStatus.CONNECTING)
        try:
            link = await QmpLink.open(self.endpoint, self.traffic, self._traffic.emit,
                                      self.command_timeout)
        except ConnectFailed as exc:
            self._set_state(ConnectionStatus.DISCONNECTED, f"cannot connect: {exc.reason}")
            raise
        self._link = link
        try:
            with background_traffic():
                version = await self._query("query-version")
                commands = await self._query("query-commands")
            self._caps = PeerCapabilities.from_replies(version, commands)
            listener = EventListener()
            link.client.register_listener(listener)
            self._spawn_conn(self._drain_events(link, listener), "events")
            self._spawn_conn(self._watch(link), "watch")
            with background_traffic():   # the jobs first: no node query during a creation
                self._jobs.on_query(await self._query("query-jobs"))
            self._read = ReadState()
            snapshot = await self.refresh(force=True)
        except (SessionError, *LINK_ERRORS) as exc:
            await self._drop_link(link)
            self._set_state(ConnectionStatus.DISCONNECTED, f"cannot connect: {exc}")
            raise ConnectFailed(self.endpoint.label, str(exc)) from exc
        self._spawn_conn(self._keep_graph(link), "updates")
        self._set_state(ConnectionStatus.CONNECTED,
                        f"connected to QEMU {self._caps.version_text}")
        return snapshot

    async def reconnect(self) -> GraphSnapshot:
        """Drop the current connection (if any) and connect again; re-reads the graph."""
        self._cancel_reconnect()
        if self._link is not None:
            await self._drop_link(self._link)
        self._set_state(ConnectionStatus.DISCONNECTED, "reconnecting")
        return await self.connect()

    async def disconnect(self) -> None:
        """Close the connection on request; the session can connect again later."""
        self._cancel_reconnect()
        if self._link is not None:
            await self._drop_link(self._link)
        self._set_state(ConnectionStatus.DISCONNECTED, "disconnected")

    async def close(self) -> None:
        """Finish the session: stop every task and close the connection."""
        self._closing = True
        self._cancel_reconnect()
        if self._link is not None:
            await self._drop_link(self._link)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._set_state(ConnectionStatus.CLOSED, "closed")

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"session:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_conn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = self._spawn(coro, name)
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    async def _drop_link(self, link: QmpLink) -> None:
        """Stop this connection's tasks and close it; errors of a dead link are expected."""
        if link is self._link:
            self._link = None            # loops see this and stop even if a cancel is lost
        current = asyncio.current_task()
        tasks = [t for t in self._conn_tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await link.close()

    def _cancel_reconnect(self) -> None:
        if self._reconnect_task is not None and self._reconnect_task is not asyncio.current_task():
            self._reconnect_task.cancel()
        self._reconnect_task = None

    async def _watch(self, link: QmpLink) -> None:
        """Notice the peer hanging up."""
        await link.hung_up()
        if self._closing or link is not self._link:
            return
        await self._connection_lost(link)

    async def _stalled(self, link: QmpLink, tasks: set[asyncio.Task[Any]]) -> None:
        """Close a link that stopped answering (its tasks only), then reconnect."""
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await link.close()
        await self._jobs.wake()
        if self.auto_reconnect and not self._closing and self._link is None \
                and self._reconnect_task is None:
            self._reconnect_task = self._spawn(self._reconnect_loop(), "reconnect")

    async def _connection_lost(self, link: QmpLink) -> None:
        await self._drop_link(link)
        self._set_state(ConnectionStatus.LOST,
                        "disconnected — outcome unknown; the graph is re-read on reconnect")
        await self._jobs.wake()
        if self.auto_reconnect and not self._closing:
            self._reconnect_task = self._spawn(self._reconnect_loop(), "reconnect")

    async def _reconnect_loop(self) -> None:
        delay, limit = self.reconnect_delays
        while not self._closing and not self.connected:
            await asyncio.sleep(delay)
            try:
                await self.connect()
            except ConnectFailed as exc:
                self._set_state(ConnectionStatus.LOST,
                                f"disconnected — outcome unknown; retrying in "
                                f"{min(delay * 2, limit):.1f} s ({exc.reason})")
                delay = min(delay * 2, limit)
        self._reconnect_task = None

    # -- commands -----------------------------------------------------------------------
    async def _query(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        return await self._send(command, arguments)

    async def _send(self, command: str, arguments: Mapping[str, Any] | None) -> Any:
        link = self._link
        if link is None:
            raise Disconnected("not connected")
        try:
            return await link.send(command, arguments, self.command_timeout)
        except Stalled:
            # a stalled peer: replies come in order, so nothing after this can be trusted
            # either; drop the connection (reconnecting re-reads the real graph)
            if link is self._link and not self._closing:
                # at once, so nobody sends into the stalled link or sees "connected"
                self._link = None
                self._set_state(ConnectionStatus.LOST, "no reply from the peer — outcome "
                                "unknown; the graph is re-read on reconnect")
                self._spawn(self._stalled(link, set(self._conn_tasks)), "stalled")
            raise

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Send one command; return its ``return`` value.

        Raises CommandFailed (QMP error, with JSON sent/received) or Disconnected. A
        command that may change the graph has the graph re-read (node details too) once
        it is answered (:func:`gui.session.updates.need_for_command`).
        """
        async with self._command_lock:
            job_id = self._jobs.starting(command, arguments or {})
            try:
                result = await self._send(command, arguments)
            except BaseException:
                if job_id is not None:
                    await self._jobs.not_started(job_id)
                    self._wake.set()     # a read deferred for that creation may go now
                raise
            finally:
                self._want(need_for_command(command))
        self._sent.record(command, arguments or {})
        return result

    # -- graph --------------------------------------------------------------------------
    @property
    def poll_deadline(self) -> float | None:
        """When (event loop time) the graph or its jobs are next read unasked; None while
        only an event, a command or a request will have them read."""
        return self._poll_deadline

    @property
    def reading(self) -> bool:
        """Whether a read of the graph or its jobs is called for or under way: after the
        last event of a change has been taken in, this goes False once the graph shown
        is the one that change left."""
        return self._need is not Need.NOTHING or self._read_lock.locked()

    def set_poll_interval(self, seconds: float | None) -> None:
        """Change the safety re-read interval (None: never) from now on."""
        self.poll_interval = seconds
        self._wake.set()                 # the loop sets its timer again

    def request_refresh(self) -> None:
        """Ask the background loop to re-read the graph (node details included) soon."""
        self._want(Need.NODES)

    def _want(self, need: Need) -> None:
        if need > self._need:
            self._need = need
        if need:
            self._wake.set()

    async def refresh(self, *, force: bool = False) -> GraphSnapshot:
        """Re-read the graph now; emits graph_changed if it changed. ``force``: node details too.

        Waits first until no image is being created (see :mod:`gui.session.updates`).
        """
        if self._link is None or self._caps is None:
            raise Disconnected("not connected")
        need = self._need
        while True:
            await self._jobs.until_not_creating(self.job_timeout)
            async with self._command_lock:
                if self._jobs.creating:
                    continue
                snapshot = await self._read_graph(force or need >= Need.NODES)
                break
        if self._need == need:           # nothing new called for a read meanwhile
            self._need = Need.NOTHING
        return snapshot

    async def _read_graph(self, force_nodes: bool) -> GraphSnapshot:
        """Read the graph (and the jobs' progress if there are jobs); emit if it changed.
        The caller holds the command lock."""
        assert self._caps is not None
        async with self._read_lock:
            with background_traffic():
                snapshot, changed = await read_graph(
                    self._query, self._read, has_debug_graph=self._caps.has_debug_graph,
                    force_nodes=force_nodes)
                if self._jobs or any(n.kind == "block-job" for n in snapshot.nodes.values()):
                    self._jobs.on_query(await self._query("query-jobs"))
        self._last_graph_read = asyncio.get_running_loop().time()
        if changed:
            self._graph_changed.emit(snapshot)
        return snapshot

    async def _read_jobs(self) -> None:
        """Read the jobs' statuses and progress only; emit the graph if that changed it."""
        async with self._read_lock:
            with background_traffic():
                self._jobs.on_query(await self._query("query-jobs"))
                snapshot, changed = await read_jobs(self._query, self._read)
        if changed:
            self._graph_changed.emit(snapshot)

    def _next_wait(self) -> tuple[float | None, bool]:
        """How long the loop may sleep before reading unasked, and whether the graph (not
        only the jobs) is due then."""
        graph_in = self.poll_interval
        if graph_in is not None:
            graph_in = max(0.0, self._last_graph_read + graph_in
                           - asyncio.get_running_loop().time())
        if self._jobs.progressing and (graph_in is None or self.job_poll_interval < graph_in):
            return self.job_poll_interval, False
        if self._shows_ended_jobs():
            stale_in = min(self.job_poll_interval * 2 ** self._stale_reads, STALE_JOB_READ_CAP)
            self._stale_reads += 1
            if graph_in is None or stale_in < graph_in:
                return stale_in, True
        else:
            self._stale_reads = 0
        return graph_in, True

    def _shows_ended_jobs(self) -> bool:
        """Whether the graph last read shows a job that QEMU's job list no longer has.

        QEMU takes a job's links out of the graph when its last reference goes, which can
        come after the job's last event (a command still holding the job, a clean-up
        still running): a read right after that event still shows the job, and no event
        will say it has gone. Such a graph is read again, sooner than the safety
        interval and less often each time, until the job is gone from it."""
        snapshot = self._read.snapshot
        if snapshot is None:
            return False
        jobs = self._jobs.jobs
        return any(node.kind == "block-job" and key.removeprefix("job:") not in jobs
                   for key, node in snapshot.nodes.items())

    async def _keep_graph(self, link: QmpLink) -> None:
        """The update loop: sleeps until something calls for a read (see updates)."""
        loop = asyncio.get_running_loop()
        while link is self._link:
            timeout, graph_due = self._next_wait()
            self._poll_deadline = None if timeout is None else loop.time() + timeout
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                self._want(Need.GRAPH if graph_due else Need.JOBS)
            self._wake.clear()
            self._poll_deadline = None
            if link is not self._link:
                return
            try:
                await self._catch_up()
            except Disconnected:
                return
            except SessionError as exc:
                log.warning("background refresh failed: %s", exc)

    async def _catch_up(self) -> None:
        """Read what was called for since the last read."""
        need = self._need
        if need is Need.NOTHING:
            return
        async with self._command_lock:
            if self._jobs.untyped:       # another client's job: is it creating an image?
                with background_traffic():
                    self._jobs.on_query(await self._query("query-jobs"))
            deferred = need >= Need.GRAPH and self._jobs.creating
            # a graph read waits for the image to exist: the creation's end wakes the loop
            self._need = need if deferred else Need.NOTHING
            try:
                if need >= Need.GRAPH and not deferred:
                    await self._read_graph(need >= Need.NODES)
                elif self._jobs and self._read.snapshot is not None:
                    await self._read_jobs()
            except BaseException:
                self._need = max(self._need, need)
                raise

    async def _drain_events(self, link: QmpLink, listener: EventListener) -> None:
        """The one task that consumes events."""
        try:
            async for event in listener:
                await self._handle_event(dict(event))
        finally:
            with contextlib.suppress(Exception):
                link.client.remove_listener(listener)

    async def _handle_event(self, event: dict[str, Any]) -> None:
        """Take an event in (job statuses, the read it calls for), then tell observers:
        one that sees it can rely on :attr:`reading` to say whether its read is done."""
        name = event.get("event", "")
        data = event.get("data", {}) or {}
        await self._jobs.on_event(name, data)
        self._want(need_for_event(name, data))
        self._events.emit(event)

    # -- jobs ---------------------------------------------------------------------------
    async def wait_job(self, job_id: str, until: tuple[str, ...],
                       timeout: float | None = None) -> JobProgress:
        """Wait until job ``job_id`` has reached a status in ``until`` (seen since last reset).

        Raises JobFailed if it was cancelled or failed first, Disconnected if the link drops.
        """
        return await self._jobs.wait(
            job_id, until, self.job_timeout if timeout is None else timeout,
            gone=lambda: not self.connected and self._link is None)

    def forget_job(self, job_id: str) -> None:
        """Forget the statuses seen of ``job_id``: a new job of that id is about to start."""
        self._jobs.forget(job_id)

"""The session: one QMP connection to one peer, and the live graph read from it.

See :mod:`gui.session` for the public API. Internals worth knowing:

* Background tasks (event drain, poll/refresh loop, connection watch, reconnect) are
  created with :meth:`Session._spawn` and kept in ``self._tasks`` — strong references,
  because the event loop (and qasync's) holds only weak ones.
* One task drains events; events that can change the graph wake the refresh loop, which
  is the only place background reads happen (under ``self._read_lock``).
* A dropped connection is noticed by the watch task through qemu.qmp's runstate; the
  session then reports ``LOST`` ("disconnected — outcome unknown"), never raises into
  the caller, and reconnects with back-off when ``auto_reconnect`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from qemu.qmp import ConnectError, EventListener, ExecInterruptedError, QMPClient, Runstate
from qemu.qmp.protocol import StateError
from qemu.qmp.qmp_client import ExecuteError

from engine.graph.snapshot import GraphSnapshot
from gui.planner import PlanContext, check_plan, plan_intent
from gui.planner.plan import Plan, QmpCommand, WaitJob
from gui.session.address import Endpoint, parse_address
from gui.session.capabilities import PeerCapabilities
from gui.session.client import LoggingQMPClient, background_traffic
from gui.session.errors import (
    CommandFailed,
    ConnectFailed,
    Disconnected,
    JobFailed,
    PreflightRefused,
    SessionError,
)
from gui.session.graph_reader import ReadState, read_graph
from gui.session.observers import Observers
from gui.session.traffic import TrafficEntry, TrafficLog

log = logging.getLogger(__name__)

#: Events after which the graph (or a job) may have changed.
GRAPH_EVENTS = frozenset({
    "JOB_STATUS_CHANGE", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_READY",
    "BLOCK_JOB_ERROR", "BLOCK_JOB_PENDING", "BLOCK_IMAGE_CORRUPTED", "BLOCK_EXPORT_DELETED",
    "DEVICE_DELETED", "DEVICE_TRAY_MOVED", "BLOCK_WRITE_THRESHOLD",
})
#: Commands that only read; everything else may change the graph.
_READ_ONLY_PREFIXES = ("query-", "x-debug-query-")


class ConnectionStatus(enum.Enum):
    DISCONNECTED = "disconnected"   # never connected, or closed the old connection on request
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"                   # dropped by the peer: outcome of in-flight commands unknown
    CLOSED = "closed"               # close() was called; the session is finished


@dataclass(frozen=True, slots=True)
class ConnectionState:
    status: ConnectionStatus
    address: str
    message: str = ""
    peer: PeerCapabilities | None = None


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job as last seen: status from events, progress from ``query-jobs``."""

    id: str
    type: str = ""
    status: str = ""
    current: int = 0
    total: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What running a plan did: the graph after and where it differs from the plan."""

    plan: Plan
    snapshot: GraphSnapshot
    mismatches: tuple[str, ...] = ()
    results: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def as_expected(self) -> bool:
        return not self.mismatches


class Session:
    """A live connection to a QMP peer (see the package docstring for the API)."""

    def __init__(
        self,
        endpoint: Endpoint | str,
        *,
        auto_reconnect: bool = True,
        poll_interval: float | None = 2.0,
        traffic_limit: int = 5000,
        reconnect_delays: tuple[float, float] = (0.1, 5.0),
        job_timeout: float = 300.0,
        command_timeout: float | None = 60.0,
    ) -> None:
        self.endpoint = parse_address(endpoint) if isinstance(endpoint, str) else endpoint
        self.auto_reconnect = auto_reconnect
        self.poll_interval = poll_interval
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
        self._client: LoggingQMPClient | None = None
        self._caps: PeerCapabilities | None = None
        self._read = ReadState()
        self._read_lock = asyncio.Lock()
        self._command_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._force_nodes = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self._reconnect_task: asyncio.Task[Any] | None = None
        self._closing = False
        self._jobs: dict[str, JobProgress] = {}
        self._job_history: dict[str, list[JobProgress]] = {}
        self._job_changed = asyncio.Condition()
        self._added_options: dict[str, dict[str, Any]] = {}

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
        return dict(self._jobs)

    @property
    def added_options(self) -> Mapping[str, Mapping[str, Any]]:
        """Options of nodes this session added or reopened, by node-name (newest wins)."""
        return self._added_options

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
        client = LoggingQMPClient(self.traffic, self._traffic.emit, name="blockgraph")
        timer = asyncio.timeout(self.command_timeout)
        try:
            async with timer:
                await client.connect(self.endpoint.connect_argument())
        except (ConnectError, OSError) as exc:   # TimeoutError is an OSError
            if timer.expired():   # qemu.qmp reports the cancelled handshake as ConnectError
                with contextlib.suppress(Exception):
                    await client.disconnect()
                reason = f"no QMP greeting within {self.command_timeout:g} s"
            elif isinstance(exc, ConnectError):
                reason = str(exc.exc) or f"{exc.error_message} ({type(exc.exc).__name__})"
            else:
                reason = str(exc)
            self._set_state(ConnectionStatus.DISCONNECTED, f"cannot connect: {reason}")
            raise ConnectFailed(self.endpoint.label, reason) from exc
        self._client = client
        try:
            with background_traffic():
                version = await self._query("query-version")
                commands = await self._query("query-commands")
            self._caps = PeerCapabilities.from_replies(version, commands)
            listener = EventListener()
            client.register_listener(listener)
            self._spawn_conn(self._drain_events(client, listener), "events")
            self._spawn_conn(self._watch(client), "watch")
            self._read = ReadState()
            snapshot = await self.refresh(force=True)
        except (SessionError, ExecInterruptedError, StateError) as exc:
            await self._drop_client(client)
            self._set_state(ConnectionStatus.DISCONNECTED, f"cannot connect: {exc}")
            raise ConnectFailed(self.endpoint.label, str(exc)) from exc
        self._spawn_conn(self._poll(client), "poll")
        self._set_state(ConnectionStatus.CONNECTED,
                        f"connected to QEMU {self._caps.version_text}")
        return snapshot

    async def reconnect(self) -> GraphSnapshot:
        """Drop the current connection (if any) and connect again; re-reads the graph."""
        self._cancel_reconnect()
        if self._client is not None:
            await self._drop_client(self._client)
        self._set_state(ConnectionStatus.DISCONNECTED, "reconnecting")
        return await self.connect()

    async def disconnect(self) -> None:
        """Close the connection on request; the session can connect again later."""
        self._cancel_reconnect()
        if self._client is not None:
            await self._drop_client(self._client)
        self._set_state(ConnectionStatus.DISCONNECTED, "disconnected")

    async def close(self) -> None:
        """Finish the session: stop every task and close the connection."""
        self._closing = True
        self._cancel_reconnect()
        if self._client is not None:
            await self._drop_client(self._client)
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

    async def _drop_client(self, client: LoggingQMPClient) -> None:
        """Stop this connection's tasks and close it; errors of a dead link are expected."""
        if client is self._client:
            self._client = None          # loops see this and stop even if a cancel is lost
        current = asyncio.current_task()
        tasks = [t for t in self._conn_tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await client.disconnect()

    def _cancel_reconnect(self) -> None:
        if self._reconnect_task is not None and self._reconnect_task is not asyncio.current_task():
            self._reconnect_task.cancel()
        self._reconnect_task = None

    async def _watch(self, client: QMPClient) -> None:
        """Notice the peer hanging up (qemu.qmp moves to DISCONNECTING on EOF)."""
        while client.runstate is Runstate.RUNNING:
            await client.runstate_changed()
        if self._closing or client is not self._client:
            return
        await self._connection_lost(client)

    async def _stalled(self, client: LoggingQMPClient, tasks: set[asyncio.Task[Any]]) -> None:
        """Close a link that stopped answering (its tasks only), then reconnect."""
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await client.disconnect()
        async with self._job_changed:
            self._job_changed.notify_all()
        if self.auto_reconnect and not self._closing and self._client is None \
                and self._reconnect_task is None:
            self._reconnect_task = self._spawn(self._reconnect_loop(), "reconnect")

    async def _connection_lost(self, client: LoggingQMPClient) -> None:
        await self._drop_client(client)
        self._set_state(ConnectionStatus.LOST,
                        "disconnected — outcome unknown; the graph is re-read on reconnect")
        async with self._job_changed:
            self._job_changed.notify_all()
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
        client = self._client
        if client is None or client.runstate is not Runstate.RUNNING:
            raise Disconnected("not connected")
        msg = QMPClient.make_execute_msg(command, arguments)
        try:
            async with asyncio.timeout(self.command_timeout):
                return await client.execute_msg(msg)
        except ExecuteError as exc:
            raise CommandFailed(dict(exc.sent), dict(exc.received)) from None
        except TimeoutError as exc:   # (an OSError too: this clause must come first)
            # a stalled peer: replies come in order, so nothing after this can be trusted
            # either; drop the connection (reconnecting re-reads the real graph)
            if client is self._client and not self._closing:
                # at once, so nobody sends into the stalled link or sees "connected"
                self._client = None
                self._set_state(ConnectionStatus.LOST, "no reply from the peer — outcome "
                                "unknown; the graph is re-read on reconnect")
                self._spawn(self._stalled(client, set(self._conn_tasks)), "stalled")
            raise Disconnected(f"no reply to {command} within {self.command_timeout:g} s — "
                               "outcome unknown", outcome_unknown=True) from exc
        except (ExecInterruptedError, StateError, EOFError, OSError) as exc:
            raise Disconnected(f"connection lost during {command} — outcome unknown",
                               outcome_unknown=True) from exc

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Send one command; return its ``return`` value.

        Raises CommandFailed (QMP error, with JSON sent/received) or Disconnected. A
        command that may change the graph makes the next refresh re-read node details.
        """
        async with self._command_lock:
            try:
                result = await self._send(command, arguments)
            finally:
                if not command.startswith(_READ_ONLY_PREFIXES):
                    self._force_nodes = True
        self._remember_options(command, arguments or {})
        return result

    def _remember_options(self, command: str, arguments: Mapping[str, Any]) -> None:
        """Keep the options of nodes we added/reopened: queries do not report them all."""
        if command == "blockdev-add" and isinstance(arguments.get("node-name"), str):
            self._added_options[arguments["node-name"]] = copy.deepcopy(dict(arguments))
        elif command == "blockdev-reopen":
            for opts in arguments.get("options", []):
                if isinstance(opts.get("node-name"), str):
                    self._added_options[opts["node-name"]] = copy.deepcopy(dict(opts))
        elif command == "x-blockdev-reopen" and isinstance(arguments.get("node-name"), str):
            self._added_options[arguments["node-name"]] = copy.deepcopy(dict(arguments))
        elif command == "blockdev-del":
            self._added_options.pop(str(arguments.get("node-name")), None)

    # -- graph --------------------------------------------------------------------------
    async def refresh(self, *, force: bool = False) -> GraphSnapshot:
        """Re-read the graph now; emits graph_changed if it changed. ``force``: node details too."""
        client = self._client
        if client is None or self._caps is None:
            raise Disconnected("not connected")
        async with self._read_lock:
            force_nodes = force or self._force_nodes
            self._force_nodes = False
            try:
                with background_traffic():
                    snapshot, changed = await read_graph(
                        self._query, self._read, has_debug_graph=self._caps.has_debug_graph,
                        force_nodes=force_nodes)
                    if self._jobs or any(n.kind == "block-job" for n in snapshot.nodes.values()):
                        await self._refresh_jobs()
            except BaseException:
                self._force_nodes = self._force_nodes or force_nodes
                raise
        if changed:
            self._graph_changed.emit(snapshot)
        return snapshot

    def request_refresh(self) -> None:
        """Ask the background loop to re-read the graph (node details included) soon."""
        self._force_nodes = True
        self._wake.set()

    async def _poll(self, client: QMPClient) -> None:
        """The refresh loop: wakes on graph events or every ``poll_interval`` seconds."""
        while client is self._client:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            if client is not self._client:
                return
            try:
                await self.refresh()
            except Disconnected:
                return
            except SessionError as exc:
                log.warning("background refresh failed: %s", exc)

    async def _drain_events(self, client: QMPClient, listener: EventListener) -> None:
        """The one task that consumes events."""
        try:
            async for event in listener:
                await self._handle_event(dict(event))
        finally:
            with contextlib.suppress(Exception):
                client.remove_listener(listener)

    async def _handle_event(self, event: dict[str, Any]) -> None:
        self._events.emit(event)
        name = event.get("event", "")
        data = event.get("data", {}) or {}
        if name == "JOB_STATUS_CHANGE":
            job_id = str(data.get("id"))
            old = self._jobs.get(job_id, JobProgress(job_id))
            await self._update_job(JobProgress(old.id, old.type, str(data.get("status")),
                                               old.current, old.total, old.error))
        elif name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            job_id = str(data.get("device"))
            old = self._jobs.get(job_id, JobProgress(job_id))
            error = data.get("error") or ("cancelled" if name == "BLOCK_JOB_CANCELLED" else None)
            await self._update_job(JobProgress(old.id, str(data.get("type", old.type)),
                                               old.status, int(data.get("offset", 0)),
                                               int(data.get("len", 0)), error))
        if name in GRAPH_EVENTS:
            self.request_refresh()

    async def _update_job(self, job: JobProgress) -> None:
        if job.status == "null":
            self._jobs.pop(job.id, None)
        else:
            self._jobs[job.id] = job
        self._job_history.setdefault(job.id, []).append(job)
        self._job_progress.emit(job)
        async with self._job_changed:
            self._job_changed.notify_all()

    async def _refresh_jobs(self) -> None:
        jobs = await self._query("query-jobs")
        for j in jobs:
            job_id = str(j["id"])
            old = self._jobs.get(job_id, JobProgress(job_id))
            new = JobProgress(job_id, str(j.get("type", "")), str(j.get("status", "")),
                              int(j.get("current-progress", 0)), int(j.get("total-progress", 0)),
                              j.get("error") or old.error)
            if new != old:
                self._jobs[job_id] = new
                self._job_progress.emit(new)

    async def wait_job(self, job_id: str, until: tuple[str, ...],
                       timeout: float | None = None) -> JobProgress:
        """Wait until job ``job_id`` has reached a status in ``until`` (seen since last reset).

        Raises JobFailed if it was cancelled or failed first, Disconnected if the link drops.
        """
        deadline = time.monotonic() + (self.job_timeout if timeout is None else timeout)
        async with self._job_changed:
            while True:
                for job in self._job_history.get(job_id, []):
                    if job.error and job.status in ("concluded", "null", ""):
                        raise JobFailed(job_id, "failed", job.error)
                    if job.status in until:
                        return job
                    if job.status == "aborting":
                        raise JobFailed(job_id, "aborted", job.error)
                if not self.connected and self._client is None:
                    raise Disconnected(f"connection lost while waiting for job {job_id}",
                                       outcome_unknown=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SessionError(f"timed out waiting for job {job_id} to become "
                                       f"{'/'.join(until)}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._job_changed.wait()

    # -- planning and execution -----------------------------------------------------------
    def plan_context(self) -> PlanContext:
        """What the pure planner needs: the graph, the peer's reopen command, known options."""
        if self._read.snapshot is None:
            raise Disconnected("no graph yet: not connected")
        caps = self._caps
        return PlanContext(
            snapshot=self._read.snapshot,
            reopen_command=(caps.reopen_command if caps else None) or "blockdev-reopen",
            known_options=self._added_options,
            commands=caps.commands if caps else frozenset(),
        )

    def plan(self, intent: Any) -> Plan:
        """Plan an intent on the current graph (pure; nothing is sent)."""
        return plan_intent(self.plan_context(), intent)

    async def run_plan(self, plan: Plan) -> ExecutionReport:
        """Execute a plan, then re-read the real graph and compare with the plan's promise.

        Preflight runs again on the current graph first; a refusal raises
        PreflightRefused before anything is sent. A failing command raises CommandFailed
        (after the graph was re-read, so views show the real state).
        """
        if plan.refusals:
            raise PreflightRefused(plan.refusals)
        reasons = check_plan(self.plan_context(), plan)
        if reasons:
            raise PreflightRefused(reasons)
        for step in plan.steps:
            if isinstance(step, WaitJob):
                self._job_history.pop(step.job_id, None)
        results: list[Any] = []
        try:
            for step in plan.steps:
                if isinstance(step, QmpCommand):
                    results.append(await self.execute(step.command, step.arguments))
                else:
                    results.append(await self.wait_job(step.job_id, step.until))
                    if step.dismiss:
                        await self._dismiss(step.job_id)
        except (CommandFailed, JobFailed):
            with contextlib.suppress(SessionError):
                await self.refresh(force=True)
            raise
        snapshot = await self.refresh(force=True)
        return ExecutionReport(plan, snapshot, tuple(plan.expected.mismatches(snapshot)),
                               tuple(results))

    async def _dismiss(self, job_id: str) -> None:
        jobs = await self.execute("query-jobs")
        error = next((j.get("error") for j in jobs if j.get("id") == job_id), None)
        await self.execute("job-dismiss", {"id": job_id})
        if error:
            raise JobFailed(job_id, "failed", str(error))

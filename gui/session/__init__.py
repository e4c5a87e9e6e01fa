"""Sessions: one live QMP connection to a block-graph peer (asyncio; never imports Qt).

The peer is the bundled engine (through an in-process socket pair), ``blockgraph serve``'s
socket, or a remote QEMU / qemu-storage-daemon — all reached through the same
``qemu.qmp`` client, and told apart only by what they answer to ``query-version`` and
``query-commands``.

Public API (stable; the GUI bridges the callbacks to Qt signals)::

    from gui.session import Session, ConnectionStatus

    session = Session("unix:/run/qsd.sock")     # or "tcp:HOST:PORT", or an Endpoint:
    # Session(socket_endpoint("bundled engine", factory))  factory() -> connected socket

    # observers: each returns an unsubscribe function; callbacks run on the event loop
    session.on_graph_changed(cb)    # cb(snapshot: GraphSnapshot) — only when it changed
    session.on_job_progress(cb)     # cb(job: JobProgress) — id, type, status, current, total, error
    session.on_connection_state(cb) # cb(state: ConnectionState) — status, address, message, peer
    session.on_traffic(cb)          # cb(entry: TrafficEntry) — every QMP message in or out
    session.on_event(cb)            # cb(event: dict) — every QMP event, raw

    await session.connect()          # -> GraphSnapshot; raises ConnectFailed
    session.state                    # ConnectionState; .status: ConnectionStatus
    session.snapshot                 # latest GraphSnapshot (None before connect)
    session.capabilities             # PeerCapabilities: version, commands, reopen_command, ...
    session.jobs                     # {job id: JobProgress}
    session.traffic                  # TrafficLog: bounded; entries .direction .time .json
    session.added_options            # {node-name: options} this client added/reopened nodes with
    await session.execute(cmd, args) # -> return value; raises CommandFailed / Disconnected
    await session.refresh(force=False) # re-read the graph now
    session.request_refresh()        # ask the background loop to re-read soon
    session.set_poll_interval(60.0)  # the safety re-read (None: events only)
    await session.wait_job(id, ("concluded",))  # -> JobProgress; raises JobFailed

    await session.reconnect()        # drop and connect again (re-reads the graph)
    await session.disconnect()       # close on request; connect() works again later
    await session.close()            # finish: every background task is stopped

Connection states: DISCONNECTED → CONNECTING → CONNECTED; a dropped link gives LOST
("disconnected — outcome unknown"), never an exception in the caller, and — with
``auto_reconnect`` (default on) — reconnects with exponential back-off (0.1 s up to 5 s)
and re-reads the graph. ``close()`` gives CLOSED.

Plans are planned (:mod:`gui.planner`) and run on a session (:mod:`gui.executor`)
elsewhere: the session only carries commands. Where the peer is:
:class:`~gui.session.peers.BundledPeer` (the bundled engine in-process) or
:func:`~gui.session.peers.remote_endpoint` (an address).

Errors (:mod:`gui.session.errors`): ``SessionError`` → ``ConnectFailed``, ``Disconnected``
(``outcome_unknown``), ``CommandFailed`` (``sent``/``received`` JSON, ``error_class``,
``desc``), ``PreflightRefused`` (``reasons``), ``UnsupportedByPeer``, ``JobFailed``.

Staying live (:mod:`gui.session.updates`): after the first read, events that can change
the graph, the session's own commands and ``request_refresh()`` have it read again, as
much as each calls for; a running job's progress is polled every ``job_poll_interval``
seconds; a slow safety re-read every ``poll_interval`` seconds (None: never) catches
what no event reports, asking the cheap ``x-debug-query-block-graph`` first and the flat
node list only when that changed (:mod:`gui.session.graph_reader`).
``session.poll_deadline`` is when the next unasked read is due (None: none is).
"""

from gui.session.address import Endpoint, parse_address, socket_endpoint
from gui.session.capabilities import PeerCapabilities
from gui.session.errors import (
    CommandFailed,
    ConnectFailed,
    Disconnected,
    JobFailed,
    PreflightRefused,
    SessionError,
    UnsupportedByPeer,
)
from gui.session.jobs import JobProgress
from gui.session.session import Session
from gui.session.state import ConnectionState, ConnectionStatus
from gui.session.traffic import TrafficEntry, TrafficLog

__all__ = [
    "CommandFailed", "ConnectFailed", "ConnectionState", "ConnectionStatus", "Disconnected",
    "Endpoint", "JobFailed", "JobProgress", "PeerCapabilities",
    "PreflightRefused", "Session", "SessionError", "TrafficEntry", "TrafficLog",
    "UnsupportedByPeer", "parse_address", "socket_endpoint",
]

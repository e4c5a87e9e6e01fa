"""One list of QMP scenarios, run over the wire against two servers, compared step by step.

The peers are a real ``qemu-storage-daemon`` 7.2 and ``blockgraph serve`` (started
as a subprocess: ``python -m gui.cli serve --socket …``). Both are driven through
qemu.qmp (its synchronous ``QEMUMonitorProtocol``), exactly as any QMP client would,
so the comparison covers the whole path: framing, negotiation, the engine and the
wire format. Each peer gets its own directory with its own copy of the images.

A :class:`Scenario` is data: images to create, then steps.

* :class:`Cmd` — one command; the outcomes must agree (``ok`` or the same error class
  and text), optionally the return values, and after it the graphs
  (:func:`tests.support.differential.graph_signature`).
* :class:`WaitEvent` — wait on both peers for an event (name and a subset of its
  data); the events received since the last wait must be the same (names and data,
  timestamps aside), then the graphs.
* :class:`Raw` — bytes sent on a separate raw connection (no library would send
  them); every line the server answers must be byte-identical, with the version
  strings of the greeting masked.

Arguments may contain ``{dir}`` (the peer's directory). A scenario whose feature is
still being built elsewhere may carry ``xfail="reason"``: it still runs, its result
still counts in the score, and the test is reported as an expected failure.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from tests.server.support import ServeProcess
from tests.support.differential import (
    graph_signature,
    outcome,
    substitute,
    unsubstitute,
    without_host_figures,
)
from tests.support.qemu import QemuStorageDaemon, create, drain_events, qemu_io

PEERS = ("qemu-storage-daemon", "blockgraph serve")


@dataclass(frozen=True)
class Image:
    """An image made with qemu-img before the scenario (``write``: qemu-io commands)."""

    name: str
    size: str = "4M"
    fmt: str = "qcow2"
    backing: str | None = None
    write: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cmd:
    command: str
    arguments: dict[str, Any] | None = None
    compare_return: bool = False
    compare_graph: bool = True


@dataclass(frozen=True)
class WaitEvent:
    event: str
    data: dict[str, Any] = field(default_factory=dict)
    compare_graph: bool = True
    timeout: float = 30


@dataclass(frozen=True)
class Raw:
    data: bytes
    negotiate: bool = True


Step = Cmd | WaitEvent | Raw


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    images: tuple[Image, ...] = ()
    #: why this scenario is expected to differ for now (feature being built)
    xfail: str | None = None


@dataclass
class Outcome:
    scenario: Scenario
    matched: bool
    steps_run: int
    mismatch: str = ""


class Mismatch(AssertionError):
    pass


# -- peers ------------------------------------------------------------------------------

class _Peer:
    """One server, a qemu.qmp monitor on it, and the events it delivered."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.dir = directory
        self.pending_events: list[dict[str, Any]] = []
        self._qsd: QemuStorageDaemon | None = None
        self._serve: ServeProcess | None = None
        if name == PEERS[0]:
            self._qsd = QemuStorageDaemon(directory).start()
            assert self._qsd.qmp is not None
            self.qmp: QEMUMonitorProtocol = self._qsd.qmp
            self.socket_path = self._qsd.socket_path
        else:
            self._serve = ServeProcess(directory).start()
            self.socket_path = self._serve.socket_path
            self.qmp = QEMUMonitorProtocol(self.socket_path)
            self.qmp.connect(negotiate=True)

    def execute(self, command: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        reply = self.qmp.cmd_raw(command, arguments)
        reply.pop("id", None)
        self._collect()
        return reply

    def _collect(self) -> None:
        self.pending_events += drain_events(self.qmp)

    def wait_event(self, event: str, data: dict[str, Any], timeout: float
                   ) -> list[dict[str, Any]]:
        """Events up to and including the first match; later ones stay pending."""
        deadline = time.monotonic() + timeout
        while True:
            self._collect()
            for i, ev in enumerate(self.pending_events):
                if ev["event"] == event and all(ev.get("data", {}).get(k) == v
                                                for k, v in data.items()):
                    taken, self.pending_events = (self.pending_events[:i + 1],
                                                  self.pending_events[i + 1:])
                    return taken
            left = deadline - time.monotonic()
            if left <= 0:
                raise Mismatch(f"{self.name}: no {event} {data} within {timeout} s; "
                               f"got {[e['event'] for e in self.pending_events]}")
            with contextlib.suppress(Exception):
                ev = self.qmp.pull_event(wait=min(left, 1.0))
                if ev is not None:
                    self.pending_events.append(ev)

    def raw(self, data: bytes, negotiate: bool) -> list[bytes]:
        """Send ``data`` on a new connection; the lines answered before a sync reply.

        QEMU's monitor socket serves one client at a time, so the library client
        steps aside (on both peers alike) and reconnects afterwards.
        """
        self.qmp.close()
        try:
            return self._raw(data, negotiate)
        finally:
            self.qmp = QEMUMonitorProtocol(self.socket_path)
            self.qmp.connect(negotiate=True)
            if self._qsd is not None:
                self._qsd.qmp = self.qmp

    def _raw(self, data: bytes, negotiate: bool) -> list[bytes]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        buf = b""

        def line() -> bytes:
            nonlocal buf
            while b"\r\n" not in buf:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    chunk = b""
                if not chunk:
                    rest, buf = buf, b""
                    return rest
                buf += chunk
            head, _, buf = buf.partition(b"\r\n")
            return head + b"\r\n"

        try:
            sock.connect(self.socket_path)
            answer = [line()]
            if negotiate:
                sock.sendall(b'{"execute":"qmp_capabilities"}')
                answer = [] if line() == b'{"return": {}}\r\n' else [b"negotiation failed"]
            sync = b"query-version" if negotiate else b"qmp_capabilities"
            sock.sendall(data + b'\n{"execute":"' + sync + b'","id":"sync"}')
            while True:
                reply = line()
                if not reply or b'"id": "sync"' in reply:
                    break
                answer.append(reply)
            return [_mask_version(x).replace(str(self.dir).encode(), b"{dir}")
                    for x in answer]
        finally:
            sock.close()

    def graph(self) -> dict[str, Any]:
        class _Exec:
            def __init__(self, peer: _Peer) -> None:
                self.peer = peer

            def execute(self, command: str, arguments: dict[str, Any] | None = None,
                        ) -> dict[str, Any]:
                return self.peer.execute(command, arguments)

        return graph_signature(_Exec(self), self.dir)

    def stop(self) -> None:
        if self._qsd is not None:
            self._qsd.stop()
        if self._serve is not None:
            with contextlib.suppress(Exception):
                self.qmp.close()
            self._serve.stop()


_VERSION = re.compile(rb'"version": \{"qemu": \{[^}]*\}, "package": "[^"]*"\}')
_AUTO_NAME = re.compile(r"#block\d+")


def _mask_version(line: bytes) -> bytes:
    """Version strings differ by design; auto node names carry random digits."""
    line = _VERSION.sub(b'"version": <masked>', line)
    return _AUTO_NAME.sub("#block?", line.decode("utf-8", "replace")).encode()


def _normalize_return(value: Any) -> Any:
    """Auto node names masked, host figures (``actual-size``) masked: allocation is
    compared through ``qemu-img map``, not through the host's block count."""
    return json.loads(_AUTO_NAME.sub("#block?", json.dumps(without_host_figures(value))))


def _event_view(ev: dict[str, Any], directory: Path) -> tuple[str, str]:
    return ev["event"], json.dumps(unsubstitute(ev.get("data"), directory), sort_keys=True)


# -- running ----------------------------------------------------------------------------

def make_images(images: Sequence[Image], directory: Path) -> None:
    for img in images:
        backing = str(directory / img.backing) if img.backing else None
        create(directory / img.name, img.size, fmt=img.fmt, backing=backing)
        if img.write:
            qemu_io(directory / img.name, *img.write, fmt=img.fmt)


def run_scenario(scenario: Scenario, workdir: Path) -> Outcome:
    """Run ``scenario`` on both peers; report whether every step agreed."""
    peers: list[_Peer] = []
    done = 0
    try:
        for name in PEERS:
            d = workdir / ("qsd" if name == PEERS[0] else "serve")
            d.mkdir(parents=True, exist_ok=True)
            make_images(scenario.images, d)
            peers.append(_Peer(name, d))
        for i, step in enumerate(scenario.steps):
            _run_step(i, step, peers)
            done += 1
        return Outcome(scenario, True, done)
    except Mismatch as exc:
        return Outcome(scenario, False, done, str(exc))
    finally:
        for p in peers:
            p.stop()


def _run_step(i: int, step: Step, peers: list[_Peer]) -> None:
    where = f"step {i}: {step}"
    if isinstance(step, Raw):
        answers = [p.raw(step.data, step.negotiate) for p in peers]
        if answers[0] != answers[1]:
            a, b = (b"".join(x) for x in answers)
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                      min(len(a), len(b)))
            raise Mismatch(f"{where}: wire answers differ at byte {at}:\n" + "\n".join(
                f"  {p.name}: ...{x[max(0, at - 80):at + 80]!r}..."
                for p, x in zip(peers, (a, b), strict=True)))
        return
    if isinstance(step, Cmd):
        replies = [p.execute(step.command, substitute(step.arguments, p.dir)) for p in peers]
        outs = [outcome(r, p.dir) for r, p in zip(replies, peers, strict=True)]
        if outs[0] != outs[1]:
            raise Mismatch(f"{where}: replies differ:\n" + "\n".join(
                f"  {p.name}: {o}" for p, o in zip(peers, outs, strict=True)))
        if step.compare_return:
            rets = [_normalize_return(unsubstitute(r.get("return"), p.dir))
                    for r, p in zip(replies, peers, strict=True)]
            if rets[0] != rets[1]:
                raise Mismatch(f"{where}: return values differ:\n" + "\n".join(
                    f"  {p.name}: {json.dumps(r)}" for p, r in zip(peers, rets, strict=True)))
        compare_graph = step.compare_graph
    else:
        seen = [p.wait_event(step.event, step.data, step.timeout) for p in peers]
        views = [[_event_view(e, p.dir) for e in evs] for p, evs in zip(peers, seen,
                                                                          strict=True)]
        if views[0] != views[1]:
            raise Mismatch(f"{where}: events differ:\n" + "\n".join(
                f"  {p.name}: {v}" for p, v in zip(peers, views, strict=True)))
        compare_graph = step.compare_graph
    if compare_graph:
        graphs = [p.graph() for p in peers]
        if graphs[0] != graphs[1]:
            raise Mismatch(f"{where}: graphs differ:\n  {PEERS[0]}: {graphs[0]}\n"
                           f"  {PEERS[1]}: {graphs[1]}")


#: Results of the scenarios run in this pytest session (for the score line).
RESULTS: dict[str, Outcome] = {}


def score_line() -> str:
    if not RESULTS:
        return ""
    matched = sum(o.matched for o in RESULTS.values())
    known = [o.scenario.name for o in RESULTS.values()
             if not o.matched and o.scenario.xfail]
    line = (f"QMP conformance against qemu-storage-daemon 7.2: {matched}/{len(RESULTS)} "
            f"scenarios match ({100 * matched / len(RESULTS):.0f}%)")
    if known:
        line += f"; differing while being built: {', '.join(sorted(known))}"
    return line

"""Differential runs of job scenarios: qemu-storage-daemon 7.2 and the engine, same images.

Extends :mod:`tests.support.differential` with what jobs need: waiting for a job
state, collecting events, peer-specific steps (QEMU injects errors with blkdebug,
the engine with its fault hook), and checks on the image files after the run:
header backing strings (``qemu-img info``), guest content (``qemu-img compare``
between the two peers' copies) and ``qemu-img check``.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.jobs.engine_jobs import jobs_of
from engine.qmp import Engine
from tests.support.differential import (
    EnginePeer,
    Mismatch,
    QsdPeer,
    graph_signature,
    outcome,
    substitute,
    unsubstitute,
    without_host_figures,
)
from tests.support.qemu import check, compare, info


@dataclass
class Cmd:
    command: str
    arguments: dict[str, Any] | None = None
    compare_graph: bool = True
    #: run on one peer only ("qsd" / "engine"), e.g. QEMU's blkdebug setup
    only: str | None = None
    #: the return values must be equal too (paths shown as ``{dir}``)
    compare_return: bool = False


@dataclass
class WaitStatus:
    """Wait until job ``job_id`` has emitted JOB_STATUS_CHANGE ``status``."""

    job_id: str
    status: str
    compare_graph: bool = True


@dataclass
class EngineHook:
    """Run ``fn(engine, dir)`` on the engine peer only (e.g. add a fault rule)."""

    fn: Callable[[Engine, Path], None]


Step = Cmd | WaitStatus | EngineHook


_AUTO = re.compile(r"#block\d+")


class _Peer:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.dir = directory
        self.events: list[dict[str, Any]] = []
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.engine: Engine | None = None
        if name == "qsd":
            self.qsd = QsdPeer(directory)
            self.peer: Any = self.qsd
        else:
            self.engine = Engine()
            self.engine.add_listener(self.events.append)
            self.peer = EnginePeer(self.engine)

    def execute(self, command: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        reply = self.peer.execute(command, arguments)
        self.log.append((command, reply))
        self.pull()
        return reply

    def pull(self, wait: float = 0.0) -> None:
        """Collect the daemon's events (the engine's arrive through its listener)."""
        if self.name != "qsd":
            return
        qmp = self.qsd.qmp
        assert qmp is not None
        if wait:
            with contextlib.suppress(TimeoutError):
                self.events.append(qmp.pull_event(wait=wait))
        self.events.extend(qmp.get_events(wait=False))

    def wait_status(self, job_id: str, status: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pull(0.02)
            if any(e["event"] == "JOB_STATUS_CHANGE" and e["data"] == {"id": job_id,
                                                                       "status": status}
                   for e in self.events):
                return
            time.sleep(0.01)
        raise Mismatch(f"{self.name}: job {job_id} never reached {status}; events: "
                       + json.dumps(event_sequence(self.events))
                       + f"; last replies: {self.log[-2:]}")

    def stop(self) -> None:
        if self.name == "qsd":
            self.qsd.stop()
        else:
            self.peer.close()


def graph_diff(qsd: dict[str, Any], engine: dict[str, Any]) -> str:
    """The nodes and edges that differ between two graph signatures, one per line."""
    lines = []
    for key in sorted(set(qsd["nodes"]) | set(engine["nodes"])):
        a, b = qsd["nodes"].get(key), engine["nodes"].get(key)
        if a != b:
            lines.append(f"node {key}:\n  qsd:    {json.dumps(a)}\n  engine: {json.dumps(b)}")
    qe = {json.dumps(e) for e in qsd["edges"]}
    ee = {json.dumps(e) for e in engine["edges"]}
    lines += [f"edge only on qsd:    {e}" for e in sorted(qe - ee)]
    lines += [f"edge only on engine: {e}" for e in sorted(ee - qe)]
    return "\n".join(lines)


def event_sequence(events: Sequence[dict[str, Any]]) -> list[str]:
    """Event names with the status / action / error that makes them comparable."""
    out = []
    for ev in events:
        d = ev.get("data", {})
        name = ev["event"]
        if name == "JOB_STATUS_CHANGE":
            out.append(f"{d['id']}:{d['status']}")
        elif name == "BLOCK_JOB_ERROR":
            out.append(f"ERROR:{d['device']}:{d['operation']}:{d['action']}")
        elif name == "BLOCK_JOB_COMPLETED" and "error" in d:
            out.append(f"COMPLETED:{d['device']}:{d['error']}")
        elif name.startswith("BLOCK_JOB_"):
            out.append(f"{name.removeprefix('BLOCK_JOB_')}:{d.get('device', d.get('id'))}")
        else:
            out.append(name)
    return out


@dataclass
class Result:
    dirs: dict[str, Path] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    replies: list[list[dict[str, Any]]] = field(default_factory=list)


def run_jobs(tmp_path: Path, setup: Callable[[Path], None], steps: Sequence[Step],
             images: Sequence[str] = (), *, compare_progress: bool = True) -> Result:
    """Run ``steps`` on both peers and compare replies, graphs, events and images.

    ``images``: file names (in each peer's directory) whose header backing string,
    guest content and consistency are compared after the run.
    """
    result = Result()
    peers: list[_Peer] = []
    try:
        for name in ("qsd", "engine"):
            d = tmp_path / name
            d.mkdir(parents=True, exist_ok=True)
            setup(d)
            result.dirs[name] = d
            peers.append(_Peer(name, d))
        for i, step in enumerate(steps):
            where = f"step {i} {step}"
            if isinstance(step, EngineHook):
                engine_peer = peers[1]
                assert engine_peer.engine is not None
                step.fn(engine_peer.engine, engine_peer.dir)
                continue
            if isinstance(step, WaitStatus):
                for p in peers:
                    p.wait_status(step.job_id, step.status)
            else:
                replies = []
                for p in peers:
                    if step.only is not None and step.only != p.name:
                        continue
                    replies.append(p.execute(step.command, substitute(step.arguments, p.dir)))
                result.replies.append(replies)
                if step.only is None:
                    outs = [outcome(r, p.dir) for r, p in zip(replies, peers, strict=True)]
                    if outs[0] != outs[1]:
                        raise Mismatch(f"{where}: replies differ: qsd={outs[0]} "
                                       f"engine={outs[1]}")
                    rets = [_AUTO.sub("#block?", json.dumps(
                        without_host_figures(unsubstitute(r.get("return"), p.dir))))
                            for r, p in zip(replies, peers, strict=True)]
                    if step.compare_return and rets[0] != rets[1]:
                        raise Mismatch(f"{where}: returns differ:\nqsd:    {rets[0]}\n"
                                       f"engine: {rets[1]}")
            if step.compare_graph and not (isinstance(step, Cmd) and step.only):
                graphs = [graph_signature(p.peer, p.dir) for p in peers]
                if graphs[0] != graphs[1]:
                    raise Mismatch(f"{where}: graphs differ:\n" + graph_diff(*graphs))
        for p in peers:
            p.pull()
            result.events[p.name] = list(p.events)
    finally:
        for p in peers:
            p.stop()
    seqs = {n: event_sequence(e) for n, e in result.events.items()}
    if seqs["qsd"] != seqs["engine"]:
        raise Mismatch(f"event sequences differ:\nqsd:    {seqs['qsd']}\n"
                       f"engine: {seqs['engine']}")
    if compare_progress:
        _compare_progress(result)
    for name in images:
        q, e = result.dirs["qsd"] / name, result.dirs["engine"] / name
        iq, ie = info(q), info(e)
        for key in ("backing-filename", "backing-filename-format", "virtual-size"):
            vq = iq.get(key)
            ve = ie.get(key)
            if isinstance(vq, str):
                vq = vq.replace(str(result.dirs["qsd"]), "{dir}")
                ve = str(ve).replace(str(result.dirs["engine"]), "{dir}")
            if vq != ve:
                raise Mismatch(f"{name}: {key} differs: qsd={vq!r} engine={ve!r}")
        if iq["format"] == "qcow2":
            check(e)
            check(q)
        if not compare(q, e):
            raise Mismatch(f"{name}: guest content differs between the peers")
    return result


def _compare_progress(result: Result) -> None:
    """len/offset/speed of the BLOCK_JOB_* events must match too."""
    def figures(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["event"], e["data"].get("len"), e["data"].get("offset"),
                 e["data"].get("speed")) for e in events
                if e["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED",
                                  "BLOCK_JOB_READY")]
    fq, fe = figures(result.events["qsd"]), figures(result.events["engine"])
    if fq != fe:
        raise Mismatch(f"job progress differs:\nqsd:    {fq}\nengine: {fe}")


def add_fault(path: str, op: str = "read", **kw: Any) -> EngineHook:
    """An engine-only step: fail ``op`` on ``{dir}/path`` like blkdebug inject-error."""
    def hook(engine: Engine, d: Path) -> None:
        jobs_of(engine).faults.add(str(d / path), op, **kw)
    return EngineHook(hook)

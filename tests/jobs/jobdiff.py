"""Differential runs of job scenarios: qemu-storage-daemon 7.2 and the engine, same images.

Extends :mod:`tests.support.differential` with what jobs need: waiting for a job
state, collecting events, peer-specific steps (QEMU injects errors with blkdebug,
the engine with its fault hook), and checks on the image files after the run:
header backing strings (``qemu-img info``), guest content (``qemu-img compare``
between the two peers' copies) and ``qemu-img check``.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from tests.support.qemu import check, compare, info, map_json, qemu_img


@dataclass
class Cmd:
    command: str
    arguments: dict[str, Any] | None = None
    compare_graph: bool = True
    #: run on one peer only ("qsd" / "engine"), e.g. QEMU's blkdebug setup
    only: str | None = None
    #: the return values must be equal too (paths shown as ``{dir}``)
    compare_return: bool = False
    #: compare only this view of the return values (e.g. selected fields of a query)
    project: Callable[[Any], Any] | None = None


@dataclass
class WaitStatus:
    """Wait until job ``job_id`` has emitted JOB_STATUS_CHANGE ``status``."""

    job_id: str
    status: str
    compare_graph: bool = True


@dataclass
class FilesSaved:
    """Remember the bytes of every file in each peer's directory (under ``label``)."""

    label: str = "files"
    compare_graph: bool = False


@dataclass
class FilesUnchanged:
    """Every file saved under ``label`` is byte for byte as it was, on both peers."""

    label: str = "files"
    compare_graph: bool = False


@dataclass
class EngineHook:
    """Run ``fn(engine, dir)`` on the engine peer only (e.g. add a fault rule)."""

    fn: Callable[[Engine, Path], None]


Step = Cmd | WaitStatus | EngineHook | FilesSaved | FilesUnchanged


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every regular file in ``directory`` (sockets and the like skipped)."""
    out = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


_AUTO = re.compile(r"#block\d+")


class _Peer:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.dir = directory
        self.events: list[dict[str, Any]] = []
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.engine: Engine | None = None
        self.saved: dict[str, dict[str, str]] = {}
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


_NODE_REF = re.compile(r"\{node(-file)?:([^}]+)\}")


def resolve_nodes(peer: _Peer, value: Any) -> Any:
    """Replace ``{node:FILE}`` by the name of the peer's format node on the image FILE
    and ``{node-file:FILE}`` by its protocol node's (auto-named nodes of a chain opened
    from headers have random digits)."""
    text = json.dumps(value)
    if "{node" not in text:
        return value
    nodes = peer.peer.execute("query-named-block-nodes", {"flat": True})["return"]
    by_file: dict[tuple[bool, str], str] = {}
    for n in nodes:
        if not n["file"].startswith("json:"):
            by_file.setdefault((n["drv"] == "file", n["file"].rsplit("/", 1)[-1]),
                               n["node-name"])

    def swap(found: re.Match[str]) -> str:
        key = (found.group(1) is not None, found.group(2))
        return by_file.get(key, f"no-node-for-{found.group(2)}")

    return json.loads(_NODE_REF.sub(swap, text))


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


# the differential harness: each branch compares one more thing (replies, events,
# progress, graphs, images) between the engine and QEMU in the same run
def run_jobs(tmp_path: Path, setup: Callable[[Path], None], steps: Sequence[Step],  # noqa: C901
             images: Sequence[str] = (), *, compare_progress: bool = True,
             compare_allocation: bool = True) -> Result:
    """Run ``steps`` on both peers and compare replies, graphs, events and images.

    ``images``: file names (in each peer's directory) whose header fields, allocation,
    guest content and consistency are compared after the run (``compare_allocation``
    False: not the allocation, for runs where how far a job got is timing).
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
            if isinstance(step, FilesSaved):
                for p in peers:
                    p.saved[step.label] = file_digests(p.dir)
                continue
            if isinstance(step, FilesUnchanged):
                for p in peers:
                    now = file_digests(p.dir)
                    changed = sorted(n for n, h in p.saved[step.label].items()
                                     if now.get(n) != h)
                    if changed:
                        raise Mismatch(f"{where}: {p.name} changed {changed}")
                continue
            if isinstance(step, WaitStatus):
                for p in peers:
                    p.wait_status(step.job_id, step.status)
            else:
                replies = []
                for p in peers:
                    if step.only is not None and step.only != p.name:
                        continue
                    args = resolve_nodes(p, substitute(step.arguments, p.dir))
                    replies.append(p.execute(step.command, args))
                result.replies.append(replies)
                if step.only is None:
                    outs = [outcome(r, p.dir) for r, p in zip(replies, peers, strict=True)]
                    if outs[0] != outs[1]:
                        raise Mismatch(f"{where}: replies differ: qsd={outs[0]} "
                                       f"engine={outs[1]}")
                    view = step.project or (lambda value: value)
                    rets = [_AUTO.sub("#block?", json.dumps(without_host_figures(
                        unsubstitute(view(r.get("return")), p.dir))))
                            for r, p in zip(replies, peers, strict=True)]
                    if (step.compare_return or step.project) and rets[0] != rets[1]:
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
    compare_images(result.dirs["qsd"], result.dirs["engine"], images,
                   allocation=compare_allocation)
    return result


#: ``qemu-img info`` fields that must agree between the peers' images
INFO_FIELDS = ("format", "backing-filename", "backing-filename-format", "virtual-size",
               "cluster-size", "dirty-flag")


def compare_images(qsd_dir: Path, engine_dir: Path, images: Sequence[str], *,
                   allocation: bool = True) -> None:
    """The two peers' copies of each image agree: header fields (``qemu-img info``),
    allocation (``qemu-img map``, host offsets aside), guest content (``qemu-img
    compare``); both pass ``qemu-img check`` and open with their whole backing chain."""
    for name in images:
        q, e = qsd_dir / name, engine_dir / name
        iq, ie = info(q), info(e)
        for key in INFO_FIELDS:
            vq = _masked(iq.get(key), qsd_dir)
            ve = _masked(ie.get(key), engine_dir)
            if vq != ve:
                raise Mismatch(f"{name}: {key} differs: qsd={vq!r} engine={ve!r}")
        if iq["format"] == "qcow2":
            check(e)
            check(q)
        _opens_with_chain(q, e)
        if not allocation:
            pass
        elif (mq := _allocation(q, iq["format"])) != (me := _allocation(e, ie["format"])):
            raise Mismatch(f"{name}: allocation differs:\nqsd:    {mq}\nengine: {me}")
        if not compare(q, e):
            raise Mismatch(f"{name}: guest content differs between the peers")


def _opens_with_chain(qsd_image: Path, engine_image: Path) -> None:
    """``qemu-img info --backing-chain`` opens the engine's image whenever it opens
    QEMU's. (It cannot open a header that names a ``json:`` backing with a ``backing``
    of its own, which QEMU writes where a snapshot's node had its backing overridden:
    qemu-img opens each layer without its backing. QEMU itself opens such an image.)"""
    first = qemu_img("info", "--output=json", "--backing-chain", qsd_image, check=False)
    second = qemu_img("info", "--output=json", "--backing-chain", engine_image, check=False)
    if first.returncode == 0 and second.returncode != 0:
        raise Mismatch(f"{engine_image.name}: qemu-img opens QEMU's image with its backing "
                       f"chain but not the engine's: {second.stderr.strip()}")


def _masked(value: Any, directory: Path) -> Any:
    return value.replace(str(directory), "{dir}") if isinstance(value, str) else value


def _allocation(path: Path, fmt: str) -> list[tuple[Any, ...]]:
    """``qemu-img map`` without host offsets, adjacent equal extents merged."""
    out: list[tuple[Any, ...]] = []
    for ext in map_json(path, fmt):
        key = (ext["depth"], ext["present"], ext["zero"], ext["data"])
        if out and out[-1][2:] == key and out[-1][0] + out[-1][1] == ext["start"]:
            out[-1] = (out[-1][0], out[-1][1] + ext["length"], *key)
        else:
            out.append((ext["start"], ext["length"], *key))
    return out


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


def named_chain(names: Sequence[str] = ("base", "mid", "top")) -> list[Cmd]:
    """``blockdev-add`` of a chain by name, bottom first (``{dir}/<name>.qcow2``, each
    with a file node ``<name>-file``); the bottom read-only, each other layer backed by
    the one before it."""
    out = []
    below: str | None = None
    for name in names:
        opts: dict[str, Any] = {"driver": "qcow2", "node-name": name,
                                "file": {"driver": "file", "filename": f"{{dir}}/{name}.qcow2",
                                         "node-name": f"{name}-file"}}
        if below is None:
            opts["read-only"] = True
        else:
            opts["backing"] = below
        out.append(Cmd("blockdev-add", opts))
        below = name
    return out


def image_fields(*fields: str) -> Callable[[Any], Any]:
    """A projection of ``query-named-block-nodes``: these ImageInfo fields by node name
    (auto-named nodes by driver and filename)."""
    def project(nodes: Any) -> Any:
        if not isinstance(nodes, list):
            return nodes
        out = {}
        for n in nodes:
            key = n["node-name"] if not n["node-name"].startswith("#") else \
                f"{n['drv']}:{n['file'].rsplit('/', 1)[-1]}"
            out[key] = {f: n["image"].get(f) for f in fields}
        return dict(sorted(out.items()))
    return project


def without_actual_size(value: Any) -> Any:
    """A reply with every ``actual-size`` taken out (host allocation differs between two
    copies of the same image: it is never compared); everything else, in its order."""
    work = [value]
    while work:
        item = work.pop()
        if isinstance(item, dict):
            item.pop("actual-size", None)
            work.extend(item.values())
        elif isinstance(item, list):
            work.extend(item)
    return value


def add_fault(path: str, op: str = "read", **kw: Any) -> EngineHook:
    """An engine-only step: fail ``op`` on ``{dir}/path`` like blkdebug inject-error."""
    def hook(engine: Engine, d: Path) -> None:
        jobs_of(engine).faults.add(str(d / path), op, **kw)
    return EngineHook(hook)

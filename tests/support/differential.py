"""Differential testing: run the same QMP on qemu-storage-daemon 7.2 and on the engine.

A *scenario* is a list of steps ``(command, arguments)``. :func:`run_scenario` runs
it on two peers, each in its own directory holding its own copy of the images (so
neither peer sees the other's locks or writes), and compares after every step:

* the outcome: ok, or error with the same class and the same text;
* the return value when the step asks for it (``Step(..., compare_return=True)``),
  with ``{dir}`` and auto node names (``#block?``) normalised, member order included;
* the resulting graph (:func:`graph_signature`): for every node its driver, read-only
  flag, ``backing_file`` string, backing depth, and its children by role. Named nodes
  are compared by name; auto-named nodes (``#blockNNN``, whose digits are random) by
  driver and filename. Filenames are compared with the peer's directory replaced by
  ``{dir}``; permissions by edge.

Arguments may contain ``{dir}``, replaced by the peer's directory (also inside
``json:`` strings). Build images in a ``setup(dir)`` callable; it runs once per peer.

Usage::

    from tests.support.differential import EnginePeer, QsdPeer, Step, run_scenario

    def setup(d: Path) -> None:
        create(d / "base.qcow2", "1M")

    run_scenario(tmp_path, setup, [
        Step("blockdev-add", {"driver": "qcow2", "node-name": "b",
                              "file": {"driver": "file", "filename": "{dir}/base.qcow2"}}),
        Step("blockdev-reopen", {"options": [...]}),
    ])

Peers need only ``execute(command, arguments) -> {"return": ...} | {"error": {...}}``;
:class:`EnginePeer` wraps :class:`engine.qmp.Engine`, :class:`QsdPeer` starts a real
daemon. Other suites (jobs, the QMP server) reuse :func:`run_scenario` with their
own peers, e.g. an engine behind the QMP socket server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.qmp import Engine, QMPError
from tests.support.qemu import QemuStorageDaemon, drain_events


class Peer(Protocol):
    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]: ...


class EnginePeer:
    """The bundled engine answering raw QMP replies."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else Engine()

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        try:
            return {"return": self.engine.execute(command, arguments)}
        except QMPError as exc:
            return {"error": exc.to_qmp()}

    def close(self) -> None:
        self.engine.close()


def QsdPeer(workdir: Path) -> QemuStorageDaemon:
    """A started qemu-storage-daemon (stop it with ``.stop()``)."""
    return QemuStorageDaemon(workdir).start()


class QemuSystemPeer:
    """qemu-system-x86_64 (q35, no defaults, paused) with extra arguments such as
    ``-device ide-cd,id=cd0``: the peer for BlockBackend (drive) behaviour."""

    def __init__(self, workdir: Path, *args: str) -> None:
        import os
        import subprocess
        import time

        from qemu.qmp.legacy import QEMUMonitorProtocol

        sock = str(workdir / "qmp.sock")
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-M", "q35", "-nodefaults", "-S", "-display", "none",
             "-qmp", f"unix:{sock},server=on,wait=off", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            if os.path.exists(sock):
                self.qmp = QEMUMonitorProtocol(sock)
                try:
                    self.qmp.connect(negotiate=True)
                    break
                except Exception:
                    self.qmp.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("qemu-system-x86_64 did not start")
            time.sleep(0.02)

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        reply = self.qmp.cmd_raw(command, arguments)
        reply.pop("id", None)
        return reply

    def events(self) -> list[dict[str, Any]]:
        return drain_events(self.qmp)

    def stop(self) -> None:
        self.qmp.close()
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Step:
    """One command. ``arguments`` may be a callable ``(peer) -> dict`` for arguments
    that depend on the peer's state (e.g. an auto-generated node name)."""

    command: str
    arguments: dict[str, Any] | Callable[[Any], dict[str, Any]] | None = None
    compare_return: bool = False
    compare_graph: bool = True
    #: Expected outcome on both peers: "ok", "error" or None (don't care, just equal).
    expect: str | None = None
    #: Called with each peer after the step (e.g. to collect events).
    after: Callable[[Any], None] | None = None


@dataclass
class StepResult:
    step: Step
    replies: list[dict[str, Any]] = field(default_factory=list)
    graphs: list[Any] = field(default_factory=list)


def substitute(value: Any, directory: Path) -> Any:
    """Replace ``{dir}`` in every string of ``value`` with ``directory``."""
    if isinstance(value, str):
        return value.replace("{dir}", str(directory))
    if isinstance(value, dict):
        return {k: substitute(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, directory) for v in value]
    return value


def unsubstitute(value: Any, directory: Path) -> Any:
    if isinstance(value, str):
        return value.replace(str(directory), "{dir}")
    if isinstance(value, dict):
        return {k: unsubstitute(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [unsubstitute(v, directory) for v in value]
    return value


_AUTO_NAME = re.compile(r"#block\d+")


def _anonymise(value: Any) -> Any:
    """Auto node names (random digits) replaced by ``#block?`` everywhere."""
    if isinstance(value, str):
        return _AUTO_NAME.sub("#block?", value)
    if isinstance(value, dict):
        return {k: _anonymise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_anonymise(v) for v in value]
    return value


#: Figures of the host, not of the image: ``actual-size`` is the file's allocation on the
#: host filesystem (st_blocks), which depends on the filesystem, on timing and on
#: preallocation heuristics, so two writers of the same image may differ in it.
HOST_FIGURES = frozenset({"actual-size"})


def without_host_figures(value: Any) -> Any:
    """``value`` with every host figure replaced by ``"<host>"`` (its presence compares,
    its number does not); what QEMU defines (sizes, allocation maps, content) stays."""
    if isinstance(value, dict):
        return {k: "<host>" if k in HOST_FIGURES else without_host_figures(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [without_host_figures(v) for v in value]
    return value


def outcome(reply: dict[str, Any], directory: Path | None = None) -> tuple[str, ...]:
    """("ok",) or ("error", class, text); auto node names in texts become ``#block?``."""
    if "error" in reply:
        desc = _AUTO_NAME.sub("#block?", reply["error"]["desc"])
        if directory is not None:
            desc = desc.replace(str(directory), "{dir}")
        return ("error", reply["error"]["class"], desc)
    return ("ok",)


def graph_signature(peer: Peer, directory: Path) -> dict[str, Any]:
    """A peer's graph in a form two peers can be compared by (see the module doc)."""
    named = peer.execute("query-named-block-nodes", {"flat": True})["return"]
    deep = peer.execute("query-named-block-nodes")["return"]
    debug = peer.execute("x-debug-query-block-graph")["return"]
    depth = {n["node-name"]: n["backing_file_depth"] for n in deep}
    by_id = {n["id"]: n for n in debug["nodes"]}
    info = {n["node-name"]: n for n in named}

    def ref(name: str) -> str:
        if not name.startswith("#"):
            return name
        n = info.get(name)
        if n is None:
            return "auto:?"
        return f"auto:{n['drv']}:{unsubstitute(n['file'], directory)}"

    def vertex(debug_node: dict[str, Any]) -> str:
        if debug_node["type"] == "block-driver":
            return ref(debug_node["name"])
        return f"{debug_node['type']}:{debug_node['name']}"

    nodes: dict[str, Any] = {}
    for n in named:
        key = ref(n["node-name"])
        entry = {
            "drv": n["drv"], "ro": n["ro"],
            "file": unsubstitute(n["file"], directory),
            "backing_file": unsubstitute(n.get("backing_file"), directory),
            "depth": depth.get(n["node-name"]),
            "header_backing": unsubstitute(n["image"].get("backing-filename"), directory),
        }
        nodes.setdefault(key, []).append(entry)
    edges = sorted(
        (vertex(by_id[e["parent"]]), e["name"], vertex(by_id[e["child"]]),
         tuple(e["perm"]), tuple(e["shared-perm"]))
        for e in debug["edges"])
    return {"nodes": {k: sorted(v, key=json.dumps) for k, v in nodes.items()},
            "edges": edges}


class Mismatch(AssertionError):
    pass


def run_scenario(tmp_path: Path, setup: Callable[[Path], None] | None,
                 steps: Sequence[Step | tuple[str, dict[str, Any] | None]],
                 peers: Sequence[tuple[str, Callable[[Path], Any]]] | None = None,
                 ) -> list[StepResult]:
    """Run ``steps`` on every peer (default: qemu-storage-daemon, then the engine) and
    raise :class:`Mismatch` at the first step where they disagree."""
    if peers is None:
        peers = [("qsd", QsdPeer), ("engine", lambda d: EnginePeer())]
    started: list[tuple[str, Any, Path]] = []
    try:
        for name, factory in peers:
            d = tmp_path / name
            d.mkdir(parents=True, exist_ok=True)
            if setup is not None:
                setup(d)
            started.append((name, factory(d), d))
        results = []
        for i, raw in enumerate(steps):
            step = raw if isinstance(raw, Step) else Step(*raw)
            res = StepResult(step)
            for _, peer, d in started:
                args = step.arguments
                if callable(args):      # arguments that depend on the peer's state
                    args = args(peer)
                reply = peer.execute(step.command, substitute(args, d))
                res.replies.append(reply)
                if step.compare_graph:
                    res.graphs.append(graph_signature(peer, d))
            _compare(i, step, res, started)
            if step.after is not None:
                for _, peer, _d in started:
                    step.after(peer)
            results.append(res)
        return results
    finally:
        for _, peer, _ in started:
            stop = getattr(peer, "stop", None) or getattr(peer, "close", None)
            if stop is not None:
                stop()


def _compare(i: int, step: Step, res: StepResult, peers: list[tuple[str, Any, Path]]) -> None:
    names = [p[0] for p in peers]
    outs = [outcome(r, p[2]) for r, p in zip(res.replies, peers, strict=True)]
    shown = step.arguments if not callable(step.arguments) else "<computed>"
    where = f"step {i} {step.command} {json.dumps(shown)}"
    if any(o != outs[0] for o in outs):
        raise Mismatch(f"{where}: replies differ: " + "; ".join(
            f"{n}={o}" for n, o in zip(names, outs, strict=True)))
    if step.expect is not None and outs[0][0] != step.expect:
        raise Mismatch(f"{where}: expected {step.expect}, both answered {outs[0]}")
    if step.compare_return:
        rets = [without_host_figures(_anonymise(unsubstitute(r.get("return"), p[2])))
                for r, p in zip(res.replies, peers, strict=True)]
        if any(json.dumps(r) != json.dumps(rets[0]) for r in rets):   # member order too
            raise Mismatch(f"{where}: return values differ:\n" + "\n".join(
                f"{n}: {json.dumps(r)}" for n, r in zip(names, rets, strict=True)))
    if step.compare_graph and any(g != res.graphs[0] for g in res.graphs):
        raise Mismatch(f"{where}: graphs differ:\n"
                       + graph_difference(names[0], res.graphs[0], names[1], res.graphs[1]))


def graph_difference(name_a: str, a: dict[str, Any], name_b: str, b: dict[str, Any]) -> str:
    """The nodes and edges that differ between two graph signatures, one per line."""
    lines = []
    for key in sorted(set(a["nodes"]) | set(b["nodes"])):
        if a["nodes"].get(key) != b["nodes"].get(key):
            lines.append(f"node {key}:\n  {name_a}: {a['nodes'].get(key)}\n"
                         f"  {name_b}: {b['nodes'].get(key)}")
    edges_a, edges_b = set(a["edges"]), set(b["edges"])
    lines += [f"edge only in {name_a}: {e}" for e in sorted(edges_a - edges_b)]
    lines += [f"edge only in {name_b}: {e}" for e in sorted(edges_b - edges_a)]
    return "\n".join(lines)

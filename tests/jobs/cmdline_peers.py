"""One QEMU command line on two peers: qemu-system-x86_64 7.2 and the engine built from it.

QEMU's own job tests open their chains with ``-drive`` (node names given through
``backing.node-name=…``, the drive's id naming the BlockBackend) and devices on
top. :func:`qemu_system_peer` starts real QEMU with such block options;
:func:`engine_peer` builds the engine from the same words with the launcher's
builder (:func:`engine.launcher.build.build`), so both peers hold the same graph,
drives and devices. Both peers collect their events and can wait for a job status,
for :func:`tests.support.differential.run_scenario`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.launcher.build import build
from engine.launcher.cmdline import parse
from engine.launcher.machine import Machine
from engine.qmp import Engine, QMPError
from tests.jobs.jobdiff import event_sequence
from tests.support.differential import Mismatch, QemuSystemPeer
from tests.support.qemu import drain_events

#: block options of a command line for a peer's directory
Words = Callable[[Path], list[str]]


class EventPeer:
    """A peer that keeps every event it emitted and waits for job statuses."""

    def __init__(self, peer: Any, pull: Callable[[EventPeer, float], None]) -> None:
        self.peer = peer
        self._pull = pull
        self.events: list[dict[str, Any]] = []

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        reply: dict[str, Any] = self.peer.execute(command, arguments)
        self._pull(self, 0.0)
        return reply

    def wait_event(self, found: Callable[[dict[str, Any]], bool],
                   timeout: float = 30.0) -> None:
        """Until an event ``found`` accepts has come (Mismatch after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._pull(self, 0.05)
            if any(found(e) for e in self.events):
                return
            time.sleep(0.01)
        raise Mismatch("event never came; events: " + json.dumps(event_sequence(self.events)))

    def wait_status(self, job_id: str, status: str, timeout: float = 30.0) -> None:
        self.wait_event(lambda e: e["event"] == "JOB_STATUS_CHANGE"
                        and e["data"] == {"id": job_id, "status": status}, timeout)

    def stop(self) -> None:
        stop = getattr(self.peer, "stop", None) or self.peer.close
        stop()


def _pull_qemu(peer: EventPeer, wait: float) -> None:
    qmp = peer.peer.qmp
    if wait:
        with contextlib.suppress(TimeoutError):
            peer.events.append(qmp.pull_event(wait=wait))
    peer.events.extend(drain_events(qmp))


def qemu_system_peer(words: Words) -> Callable[[Path], EventPeer]:
    """A factory for run_scenario: qemu-system-x86_64 (q35, paused) with ``words(dir)``."""
    def start(d: Path) -> EventPeer:
        return EventPeer(QemuSystemPeer(d, *words(d)), _pull_qemu)
    return start


class MachinePeer:
    """The engine built from a command line, with a VM's monitor commands
    (``device_del`` …) as ``blockgraph qemu`` serves them; raw QMP replies."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        try:
            return {"return": self.machine.execute(command, arguments)}
        except QMPError as exc:
            return {"error": exc.to_qmp()}

    def close(self) -> None:
        self.machine.close()


def engine_peer(words: Words) -> Callable[[Path], EventPeer]:
    """A factory for run_scenario: the engine built from ``words(dir)``, paused (as
    qemu-system's peer runs with ``-S``)."""
    def start(d: Path) -> EventPeer:
        engine = Engine()
        machine = Machine(engine, build(engine, parse(words(d))), running=False)
        peer = EventPeer(MachinePeer(machine), lambda p, wait: None)
        engine.add_listener(peer.events.append)
        return peer
    return start


def until(status: str, job_id: str) -> Callable[[EventPeer], None]:
    """A step's ``after``: wait on each peer for the job to reach ``status``."""
    def after(peer: EventPeer) -> None:
        peer.wait_status(job_id, status)
    return after

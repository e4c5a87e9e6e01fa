"""The engine as a VM's monitor sees it: the block commands plus the machine's own.

A ``qemu-system`` monitor answers more than the block layer: ``human-monitor-command``
(here the ``qemu-io`` HMP command, see :mod:`.hmp`), ``device_add``/``device_del`` of
block devices (with ``DEVICE_DELETED``), ``object-add``/``object-del`` of iothreads,
and ``query-status``; other objects (throttle groups) are the engine's.
:class:`Machine` adds those in front of an
:class:`engine.qmp.Engine` for the launcher only, so that ``blockgraph serve`` stays
a storage daemon's monitor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine.graph.model import Backend, GraphError
from engine.jobs.engine_jobs import jobs_of
from engine.launcher import hmp
from engine.launcher.build import BuildError, Built, add_device
from engine.launcher.cmdline import BLOCK_DEVICES, BUS_DEVICES, Option
from engine.qmp.engine import Engine
from engine.qmp.errors import QMPError, generic

#: how long unplugging a drive waits for the jobs it cancelled to end (seconds)
_JOB_END_TIMEOUT = 30.0

_OWN = ("human-monitor-command", "device_add", "device_del", "object-add", "object-del",
        "query-status", "stop", "cont")


class Machine:
    """An engine with a VM's monitor commands; what ``blockgraph qemu`` serves."""

    def __init__(self, engine: Engine, built: Built, *, running: bool = True) -> None:
        self.engine = engine
        self.built = built
        self.running = running

    def commands(self) -> list[str]:
        """The engine's commands and the machine's."""
        return [*self.engine.commands(), *_OWN]

    def add_listener(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        return self.engine.add_listener(callback)

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a machine command here, any other in the engine."""
        args = arguments or {}
        handler = _HANDLERS.get(command)
        if handler is None:
            return self.engine.execute(command, arguments)
        with self.engine.lock:
            return handler(self, args)

    def close(self) -> None:
        self.engine.close()


def _hmp(machine: Machine, args: dict[str, Any]) -> Any:
    line = args.get("command-line")
    if not isinstance(line, str):
        raise generic("Parameter 'command-line' is missing" if line is None else
                      "Invalid parameter type for 'command-line', expected: string")
    return hmp.run(machine.engine.graph, line, waiter=_monitor_waiter(machine))


def _monitor_waiter(machine: Machine) -> hmp.Waiter:
    """Waits for a condition with the engine's lock let go (jobs need it to get on)."""
    def wait(done: Callable[[], bool]) -> None:
        cond = threading.Condition(machine.engine.lock)
        with cond:
            while not done():
                cond.wait(0.005)

    return wait


def _device_add(machine: Machine, args: dict[str, Any]) -> Any:
    driver = args.get("driver")
    if not isinstance(driver, str):
        raise generic("Parameter 'driver' is missing")
    if driver not in BLOCK_DEVICES and driver not in BUS_DEVICES:
        raise generic(f"'{driver}' is not a valid device model name")
    text = ",".join([driver, *(f"{k}={_prop(v)}" for k, v in args.items() if k != "driver")])
    dev_id = args.get("id")
    if dev_id is not None and (dev_id in machine.built.devices
                               or dev_id in machine.built.scsi_controllers):
        raise generic(f"Duplicate device ID '{dev_id}'")
    try:
        add_device(machine.engine, Option("-device", text), machine.built)
    except BuildError as exc:
        raise generic(str(exc).split(": ", 1)[1]) from None
    return {}


def _prop(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).replace(",", ",,")


def _device_del(machine: Machine, args: dict[str, Any]) -> Any:
    dev_id = args.get("id")
    if not isinstance(dev_id, str):
        raise generic("Parameter 'id' is missing")
    backend = machine.built.devices.get(dev_id)
    if backend is None:
        raise QMPError("DeviceNotFound", f"Device '{dev_id}' not found")
    graph = machine.engine.graph
    if backend.root is not None:
        with graph.drained([backend.root.child], subtree=False):
            pass        # the device quiesces its drive as it goes (jobs above pause)
    if backend.name and backend.name in machine.built.drives:
        _cancel_jobs_on(machine.engine, backend)
    try:
        with graph.transaction():
            if backend.name and backend.name in machine.built.drives:
                # a -drive's backend goes with its device, as QEMU's legacy drives do
                machine.built.drives.pop(backend.name)
            graph.remove_backend(backend)
    except GraphError as exc:
        raise generic(str(exc)) from None
    del machine.built.devices[dev_id]
    machine.engine.emit("DEVICE_DELETED", {"path": f"/machine/peripheral/{dev_id}",
                                           "device": dev_id})
    return {}


def _cancel_jobs_on(engine: Engine, backend: Backend) -> None:
    """QEMU's blockdev_auto_del: a -drive going with its device first cancels (softly)
    every block job that holds the drive's node; deleting the drive then waits for
    those jobs to end (its drain polls them), so they end before the device is gone."""
    root = backend.root.child if backend.root is not None else None
    if root is None:
        return
    manager = jobs_of(engine)
    cancelled = []
    for job in manager.jobs:
        parent = engine.graph.jobs.get(job.id)
        if job.is_block_job and parent is not None and \
                any(link.child is root for link in parent.links):
            job.cancel(False)
            cancelled.append(job)
    manager.cond.wait_for(lambda: all(job.finished.is_set() for job in cancelled),
                          timeout=_JOB_END_TIMEOUT)


def _object_add(machine: Machine, args: dict[str, Any]) -> Any:
    qom_type, obj_id = args.get("qom-type"), args.get("id")
    if not isinstance(qom_type, str) or not isinstance(obj_id, str):
        raise generic("Parameter 'qom-type' is missing" if qom_type is None
                      else "Parameter 'id' is missing")
    if qom_type != "iothread":
        return machine.engine.execute("object-add", args)   # throttle groups and others
    if obj_id in machine.built.iothreads:
        raise generic(f"attempt to add duplicate property '{obj_id}' to object "
                      "(type 'container')")
    machine.built.iothreads.append(obj_id)
    return {}


def _object_del(machine: Machine, args: dict[str, Any]) -> Any:
    obj_id = args.get("id")
    if obj_id not in machine.built.iothreads:
        return machine.engine.execute("object-del", args)
    machine.built.iothreads.remove(obj_id)
    return {}


def _query_status(machine: Machine, args: dict[str, Any]) -> Any:
    return {"status": "running" if machine.running else "prelaunch",
            "singlestep": False, "running": machine.running}


def _stop(machine: Machine, args: dict[str, Any]) -> Any:
    machine.running = False
    return {}


def _cont(machine: Machine, args: dict[str, Any]) -> Any:
    machine.running = True
    return {}


_HANDLERS: dict[str, Callable[[Machine, dict[str, Any]], Any]] = {
    "human-monitor-command": _hmp, "device_add": _device_add, "device_del": _device_del,
    "object-add": _object_add, "object-del": _object_del, "query-status": _query_status,
    "stop": _stop, "cont": _cont,
}

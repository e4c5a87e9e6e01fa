"""QEMU 7.2's rules for removable media: ``eject``, ``blockdev-change-medium`` and the
tray commands, checked against the devices ``query-block`` reports."""

from __future__ import annotations

from dataclasses import dataclass

from engine.graph import perms as P
from engine.graph.rules.chains import check_op
from engine.graph.rules.errors import DeviceNotFound, DeviceWithoutBackend, RuleViolation
from engine.graph.rules.permissions import PermissionSim, check_file_locks
from engine.graph.view import GraphView


@dataclass(frozen=True, slots=True)
class Device:
    """A guest device with a block backend, as ``query-block`` reports it.

    ``name`` is how QMP's ``id`` names it (its qdev id, or its QOM path when it has
    none); ``medium`` the node inserted, if any.
    """

    name: str
    removable: bool = False
    has_tray: bool = False
    tray_open: bool = False
    locked: bool = False
    medium: str | None = None
    read_only: bool = True


def devices_from_query_block(reply: list[dict[str, object]]) -> dict[str, Device]:
    """The devices of a ``query-block`` reply, by the name ``id`` takes."""
    out: dict[str, Device] = {}
    for b in reply:
        name = str(b.get("qdev") or b.get("device") or "")
        if not name:
            continue
        inserted = b.get("inserted")
        medium = str(inserted.get("node-name")) if isinstance(inserted, dict) else None
        ro = bool(inserted.get("ro", True)) if isinstance(inserted, dict) else True
        out[name] = Device(name, bool(b.get("removable")), "tray_open" in b,
                           bool(b.get("tray_open")), bool(b.get("locked")), medium, ro)
    return out



def find_device(view: GraphView, devices: dict[str, Device] | None, name: str) -> Device:
    """The device ``id`` names: known from ``query-block``, or (without it) a backend of
    the graph. A device that holds one with a block backend (``virtio-disk0`` of
    ``/machine/peripheral/virtio-disk0/virtio-backend``) has none itself."""
    if devices is not None:
        if name in devices:
            return devices[name]
        if any(d.name.startswith(f"/machine/peripheral/{name}/") for d in devices.values()):
            raise DeviceWithoutBackend()
        raise DeviceNotFound(name)
    if view.node_info(f"backend:{name}") is None:
        raise DeviceNotFound(name)
    medium = view.child(f"backend:{name}", "root")
    return Device(name, True, True, False, False, medium)


def check_medium(view: GraphView, devices: dict[str, Device] | None, name: str, op: str, *,
                 filename: str | None = None, fmt: str = "raw", read_only: bool | None = None,
                 force: bool = False) -> None:
    """``eject`` (op "eject") or ``blockdev-change-medium`` (op "change") of device
    ``name``, in QEMU's order: the device; the new medium opened (a format takes its
    image locks then; raw takes none until it is inserted); the tray; what holds the
    current medium; the new medium inserted under the device's permissions."""
    device = find_device(view, devices, name)
    writable = not (device.read_only if read_only is None else read_only)
    if op == "change" and filename is not None and fmt != "raw":
        perm = P.CONSISTENT_READ | (P.WRITE | P.RESIZE if writable else 0)
        check_file_locks(view, filename, perm, P.ALL & ~(P.WRITE | P.RESIZE))
    if not device.removable:
        raise RuleViolation(f"Device '{name}' is not removable")
    if device.has_tray and not device.tray_open and device.locked and not force:
        raise RuleViolation(f"Device '{name}' is locked and force was not specified, "
                            "wait for tray to open and try again")
    if device.medium is not None and view.node_info(device.medium) is not None:
        check_op(view, device.medium, "eject")
    if op == "change" and filename is not None and fmt == "raw":
        # a removable device reads its medium and lets others read it too
        check_file_locks(view, filename, P.CONSISTENT_READ,
                          P.CONSISTENT_READ | P.WRITE_UNCHANGED)


def check_tray(view: GraphView, devices: dict[str, Device] | None, name: str, op: str, *,
               node: str | None = None, force: bool = False) -> None:
    """``blockdev-open-tray`` ("open"), ``-close-tray`` ("close"), ``-remove-medium``
    ("remove") and ``-insert-medium`` ("insert" ``node``) of device ``name``. Opening a
    tray the guest locked is not refused: QEMU asks the guest and returns."""
    device = find_device(view, devices, name)
    if op == "insert":
        info = view.node_info(node or "")
        if info is None or info.kind != "block-node":
            raise RuleViolation(f"Node '{node}' not found")
        if any(e.parent.startswith("backend:") for e in view.parents(info.key)):
            raise RuleViolation(f"Node '{node}' is already in use")
        if not device.removable:
            raise RuleViolation("Device is not removable")
        if device.has_tray and not device.tray_open:
            raise RuleViolation("Tray of the device is not open")
        if device.medium is not None:
            raise RuleViolation("There already is a medium in the device")
        sim = PermissionSim(view)
        # a removable device reads its medium and lets others read it too
        sim.attach(f"backend:{name}", info.key, "root", perm=P.CONSISTENT_READ,
                   shared=P.CONSISTENT_READ | P.WRITE_UNCHANGED)
        sim.refresh(info.key)
        return
    if not device.removable:
        raise RuleViolation(f"Device '{name}' is not removable")
    if op == "remove":
        if device.has_tray and not device.tray_open:
            raise RuleViolation(f"Tray of device '{name}' is not open")
        if device.medium is not None and view.node_info(device.medium) is not None:
            check_op(view, device.medium, "eject")


"""QEMU 7.2's rules for deleting nodes, naming new ones, snapshots and image creation."""

from __future__ import annotations

from engine.formats.backing_names import has_protocol
from engine.graph import drivers
from engine.graph.names import check_node_name
from engine.graph.rules.chains import (
    NEW_AUTO_NAME,
    check_op,
    cumulative_perm,
    first_blocker,
    is_filter,
    lookup_bs,
)
from engine.graph.rules.errors import (
    BlockDeviceInUse,
    DuplicateNodeName,
    InvalidNodeName,
    NodeBusy,
    NodeInUse,
    NodeNotFound,
    NotMonitorOwned,
    ReferenceNotFound,
    RuleViolation,
)
from engine.graph.rules.permissions import PermissionSim
from engine.graph.snapshot import NodeInfo
from engine.graph.view import GraphView


def check_delete(view: GraphView, node: str, *, monitor_owned: bool | None = None,
                 job_blockers: tuple[str, ...] | None = None) -> None:
    """Would ``blockdev-del`` of ``node`` be refused? QEMU's check order:
    unknown node, used by a BlockBackend, operation blockers, not monitor-owned (unknown
    from QMP: pass None), other node parents.

    The operation blockers are the node's users that block deletion, the newest first
    (QEMU names the first of its list): a block job holding the node, or a node whose
    backing it is. ``job_blockers`` (job types, newest first) stands in for jobs a
    view cannot show as parents.
    """
    info = view.node_info(node)
    if info is None or info.kind != "block-node":
        raise NodeNotFound(node)
    parents = view.parents(node)
    if any(e.parent.startswith("backend:") for e in parents):
        raise NodeInUse(node)
    blocker = first_blocker(view, node)
    if blocker is None and job_blockers:
        blocker = f"block device is in use by block job: {job_blockers[0]}"
    if blocker is not None:
        raise NodeBusy(node, blocker)
    if monitor_owned is False:
        raise NotMonitorOwned(node)
    if any(not e.parent.startswith(("job:", "backend:")) for e in parents):
        raise BlockDeviceInUse(node)


def check_new_node_name(view: GraphView, name: str) -> None:
    """A name for a node about to be added (QEMU's bdrv_assign_node_name): valid
    (``names.check_node_name``), no other node's, and no drive's (a BlockBackend name,
    which a view knows when it says what the backend's ``device`` is)."""
    text = check_node_name(name)
    if text is not None:
        raise InvalidNodeName(text)
    info = view.node_info(name)
    if info is not None and info.kind == "block-node":
        raise DuplicateNodeName(name)
    backend = view.node_info(f"backend:{name}")
    if backend is not None and backend.kind == "block-backend" and \
            backend.info.get("device") == name:
        raise RuleViolation(f"node-name={name} is conflicting with a device id")


def check_add(view: GraphView, node_name: str, file_node: str | None = None,
              backing: str | None = None) -> None:
    """``blockdev-add`` of an image by name (its ``file`` node named too, a ``backing``
    node given by reference): the refusals QEMU makes before it opens a file, in its
    order."""
    check_new_node_name(view, node_name)
    if file_node is not None:
        check_new_node_name(view, file_node)
        if file_node == node_name:
            raise DuplicateNodeName(file_node)
    if backing is not None and view.node_info(backing) is None:
        missing = ReferenceNotFound(backing, backing)
        raise RuleViolation(f"Could not open backing file: {missing}")


def check_snapshot_source(view: GraphView, device: str | None,
                          node_name: str | None) -> str:
    """The snapshot commands' checks on the node they put an overlay above (spec §4.1
    1–2): it exists (QEMU's bdrv_lookup_bs) and no job or overlay blocks it. Returns
    its key."""
    key = lookup_bs(view, device, node_name)
    check_op(view, key, "external-snapshot")
    return key


def check_snapshot_node(view: GraphView, node: str) -> str:
    """``blockdev-snapshot``'s checks on ``node``, a device or node name."""
    return check_snapshot_source(view, node, node)


def check_snapshot(view: GraphView, node: str, overlay: str = NEW_AUTO_NAME) -> None:
    """``blockdev-snapshot node overlay`` with a new, unused qcow2 ``overlay``: the
    node's checks, then the overlay taking over the node's parents (a frozen link
    refuses) and the permissions that follow."""
    node = check_snapshot_node(view, node)
    sim = PermissionSim(view)
    sim.add_node(NodeInfo(key=overlay, kind="block-node", name=overlay, driver="qcow2"))
    sim.attach(overlay, node, "backing")
    sim.replace_node(node, overlay)
    sim.refresh(overlay)


def check_overlay(view: GraphView, overlay: str) -> None:
    """``blockdev-snapshot``'s checks on the overlay, in QEMU's order: an overlay whose
    users read it is in use (a mirror target, written only, may get its backing)."""
    if "consistent-read" in cumulative_perm(view, overlay):
        raise RuleViolation("The overlay is already in use")
    if is_filter(view, overlay):
        raise RuleViolation("Filters cannot be used as overlays")
    if view.child(overlay, "backing") is not None:
        raise RuleViolation("The overlay already has a backing image")
    info = view.node_info(overlay)
    if info is None or not drivers.cow(info.driver):
        raise RuleViolation("The overlay does not support backing images")


def check_overlay_name(view: GraphView, node_name: str | None, new_name: str | None) -> None:
    """``blockdev-snapshot-sync``'s checks on the name of the overlay it makes."""
    if node_name is not None and new_name is None:
        raise RuleViolation("New overlay node-name missing")
    if new_name is not None and (view.node_info(new_name) is not None
                                 or view.node_info(f"backend:{new_name}") is not None):
        raise RuleViolation("New overlay node-name already in use")


#: protocols a file name may name that open nodes but create no files (QEMU's drivers
#: without ``create_opts``)
OPEN_ONLY_PROTOCOLS = ("blkdebug", "blkverify", "null-co", "null-aio")


def check_image_create(fmt: str, filename: str, backing: str | None) -> None:
    """QEMU's checks before it creates an image file (``bdrv_img_create``), in its order."""
    spec = drivers.DRIVERS.get(fmt)
    if spec is None or spec.module is not None:    # a module QEMU has not loaded
        raise RuleViolation(f"Unknown file format '{fmt}'")
    protocol = filename.split(":", 1)[0] if has_protocol(filename) else "file"
    if protocol != "file" and protocol not in OPEN_ONLY_PROTOCOLS:
        raise RuleViolation(f"Unknown protocol '{protocol}'")
    if not spec.is_format:
        raise RuleViolation(f"Format driver '{fmt}' does not support image creation")
    if protocol != "file":
        raise RuleViolation(f"Protocol driver '{protocol}' does not support image creation")
    if fmt not in drivers.ENGINE_IMAGE_DRIVERS:
        raise RuleViolation(f"Format '{fmt}' is not supported by the bundled engine")
    if backing is not None and not spec.cow:
        raise RuleViolation(f"Backing file not supported for file format '{fmt}'")
    if backing is not None and filename == backing:
        raise RuleViolation(
            "Error: Trying to create an image with the same filename as the backing file")

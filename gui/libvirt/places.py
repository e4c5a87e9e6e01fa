"""Where a graph node sits in libvirt's terms: a disk target and a layer of its chain.

libvirt names layers by disk target and index (``vda``, ``vda[3]``), not by node-name:
:func:`locate` maps the graph's nodes to the disks of the live domain XML (the backend's
device id is the disk's alias; layers are matched by file name), :func:`resolve_name`
reads a name as virsh users write it. Pure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.graph import rules
from engine.graph.drivers import filtered_role
from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import ChainLayer, DomainDescription, DomainDisk
from gui.libvirt.errors import NotLibvirtShaped


@dataclass(frozen=True, slots=True)
class Place:
    """Where a graph node sits in libvirt's terms."""

    disk: DomainDisk
    layer: ChainLayer
    depth: int          # 0: the active layer

    @property
    def name(self) -> str:
        return self.disk.index_name(self.layer)


def backend_alias(key: str) -> str:
    """The device id of a backend key: ``backend:sata0-0-0`` -> ``sata0-0-0``,
    ``backend:/machine/peripheral/virtio-disk0/virtio-backend`` -> ``virtio-disk0``."""
    name = key.removeprefix("backend:")
    if name.startswith("/machine/peripheral/"):
        return name.removeprefix("/machine/peripheral/").split("/", 1)[0]
    return name


def image_path(graph: GraphSnapshot, key: str) -> str:
    """The file a format node reads: its protocol child's name (a ``json:`` name of the
    format node itself says less)."""
    file_child = graph.child(key, "file")
    if file_child is not None and graph.nodes[file_child].filename:
        return graph.nodes[file_child].filename
    return graph.nodes[key].filename


def disk_root(graph: GraphSnapshot, disk: DomainDisk) -> str | None:
    """The node the disk's device uses (the backend's root child), or None."""
    for key, node in graph.nodes.items():
        if node.kind == "block-backend" and disk.alias and backend_alias(key) == disk.alias:
            return graph.child(key, "root")
    return None


def disk_chain_nodes(graph: GraphSnapshot, disk: DomainDisk) -> list[str]:
    """The format nodes of the disk's chain in QEMU's graph, top first (filters skipped)."""
    out: list[str] = []
    key = disk_root(graph, disk)
    seen: set[str] = set()
    while key is not None and key not in seen:
        seen.add(key)
        node = graph.nodes[key]
        role = filtered_role(node.driver)
        if role is not None and graph.child(key, "backing") is None:
            key = graph.child(key, role)             # a filter: pass through to its child
            continue
        out.append(key)
        key = graph.backing(key)
    return out


def disk_chain_paths(graph: GraphSnapshot, disk: DomainDisk) -> list[str]:
    return [image_path(graph, k) for k in disk_chain_nodes(graph, disk)]


def locate(graph: GraphSnapshot, description: DomainDescription) -> dict[str, Place]:
    """Graph node key -> its disk and layer, for every layer of every disk."""
    out: dict[str, Place] = {}
    for disk in description.disks:
        layers = {os.path.realpath(layer.path): layer for layer in disk.chain if layer.local}
        for depth, key in enumerate(disk_chain_nodes(graph, disk)):
            layer = layers.get(os.path.realpath(image_path(graph, key)))
            if layer is None and depth < len(disk.chain):
                layer = disk.chain[depth]
            if layer is not None:
                out[key] = Place(disk, layer, depth)
    return out


def resolve_name(graph: GraphSnapshot, description: DomainDescription, name: str) -> str:
    """A node key for ``name``: a node-name, or a disk target as virsh users know it —
    ``vda`` (its active layer) or ``vda[3]`` (a layer by libvirt's index)."""
    if name in graph.nodes:
        return name
    places = locate(graph, description)
    for key, place in places.items():
        if (name == place.disk.target and place.depth == 0) or name == place.name:
            return key
    raise rules.ReferenceNotFound(name)


def job_disk(graph: GraphSnapshot, places: Mapping[str, Place], job: str) -> DomainDisk:
    """The disk whose chain the block job ``job`` runs on."""
    key = job if job.startswith("job:") else f"job:{job}"
    if key not in graph.nodes:
        raise rules.RuleViolation(f"Block job '{job}' not found")
    for e in graph.children(key):
        if e.child in places:
            return places[e.child].disk
    raise NotLibvirtShaped(f"block job {job} runs on no disk of this domain: libvirt "
                           "cannot address it")

"""A libvirt domain for the headless commands (``blockgraph render``, later ``plan``).

    snapshot, description = await read_domain("qemu:///system", "vm1")
    disks_json(snapshot, description)   # {"vda": {"node": ..., "chain": [...]}, ...}

The session is the editor's (:meth:`LibvirtHost.session`): the graph is read through
libvirt's QMP passthrough. ``disks_json`` names each disk's layers the way virsh does
(``vda``, ``vda[3]``), so a user can find ``vda``'s nodes in a rendered graph.
"""

from __future__ import annotations

from typing import Any

from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import DomainDescription
from gui.libvirt.errors import LibvirtError
from gui.libvirt.host import LibvirtHost, split_domain_address
from gui.libvirt.places import disk_chain_nodes, disk_root, locate


def domain_from(connect: str, domain: str | None) -> tuple[str, str]:
    """(URI, domain) from ``--connect URI --domain NAME`` or ``--connect URI#NAME``."""
    uri, name = split_domain_address(connect)
    name = domain or name
    if not name:
        raise ValueError(f"{uri} is a libvirt connection: name the VM with --domain NAME")
    return uri, name


async def read_domain(uri: str, name: str) -> tuple[GraphSnapshot, DomainDescription]:
    """The domain's graph (through passthrough) and its live XML's disks."""
    async with LibvirtHost(uri) as host:
        if name not in {d.name for d in await host.domains()}:
            raise LibvirtError(f"Domain not found: no domain with matching name '{name}'")
        session = host.session(name, auto_reconnect=False)
        try:
            snapshot = await session.connect()
            description = await host.describe(name)
        finally:
            await session.close()
    return snapshot, description


def disks_json(snapshot: GraphSnapshot, description: DomainDescription) -> dict[str, Any]:
    """Each disk: its device node (the backend's root) and its layers, top first, with
    libvirt's names for them."""
    places = locate(snapshot, description)
    out: dict[str, Any] = {}
    for disk in description.disks:
        chain = []
        for key in disk_chain_nodes(snapshot, disk):
            place = places.get(key)
            chain.append({"node": key, "name": place.name if place else None,
                          "path": place.layer.path if place else snapshot.nodes[key].filename})
        out[disk.target] = {"device": disk.device, "alias": disk.alias,
                            "node": disk_root(snapshot, disk), "chain": chain}
    return out

"""What a libvirt connection knows for an audit: every domain's XML (running or not)
and where a storage pool keeps its volumes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from engine.offline.domain_xml import DomainDescription
from gui.libvirt.errors import LibvirtError
from gui.libvirt.host import LibvirtHost


async def domain_descriptions(host: LibvirtHost) -> list[DomainDescription]:
    """Every domain: a running one from its live XML (the whole chain), a stopped one
    from its persistent XML."""
    out = []
    for info in await host.domains():
        out.append(await host.describe(info.name))
    return out


async def pool_directory(host: LibvirtHost, pool: str) -> str:
    """The directory of storage pool ``pool`` (its ``<target><path>``)."""
    lookup = await host.call(host.connection.storagePoolLookupByName, pool)
    xml = await host.call(lookup.XMLDesc, 0)
    path = ET.fromstring(xml).findtext("./target/path")
    if not path:
        raise LibvirtError(f"storage pool '{pool}' has no directory (target path)")
    return path

"""The disks of a libvirt domain, read from its XML (``virsh dumpxml``), without libvirt.

Both the audit of a directory (which domain uses which file, running or not) and the
libvirt peer (which node is ``vda``'s active layer, what ``vda[3]`` names) need the same
facts: each disk's target (``vda``, ``sda``), device kind, alias (QEMU's device id),
read-only and shareable flags, and its chain of images.

A running domain's live XML lists the whole chain: ``<source index='2'>`` then nested
``<backingStore index='3'>`` elements, ending with an empty ``<backingStore/>``; the
``index`` is what libvirt's block APIs accept as ``vda[3]``. An inactive domain's XML
usually names only the active layer (no ``<backingStore>`` at all): then the chain is
not known from the XML and :attr:`DomainDisk.chain_complete` is False — the audit reads
the rest from the image headers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

REMOVABLE = ("cdrom", "floppy")


@dataclass(frozen=True, slots=True)
class ChainLayer:
    """One image of a disk's chain: ``path`` is a file or device path, or for network and
    pool volumes a ``protocol:name`` / ``pool/volume`` label."""

    path: str
    format: str = ""
    index: int | None = None
    kind: str = "file"          # file | block | network | volume | dir

    @property
    def local(self) -> bool:
        """A path on this host's file system (a file or a block device)."""
        return self.kind in ("file", "block")


@dataclass(frozen=True, slots=True)
class DomainDisk:
    target: str
    device: str = "disk"
    bus: str = ""
    alias: str | None = None
    read_only: bool = False
    shareable: bool = False
    chain: tuple[ChainLayer, ...] = ()
    chain_complete: bool = False

    @property
    def removable(self) -> bool:
        return self.device in REMOVABLE

    @property
    def source(self) -> ChainLayer | None:
        """The active layer (what ``virsh domblklist`` shows); None for an empty drive."""
        return self.chain[0] if self.chain else None

    def index_name(self, layer: ChainLayer) -> str:
        """How libvirt's block APIs name a layer: ``vda[3]`` (or the path, without index)."""
        return f"{self.target}[{layer.index}]" if layer.index is not None else layer.path


@dataclass(frozen=True, slots=True)
class DomainDescription:
    name: str
    uuid: str = ""
    running: bool = False
    disks: tuple[DomainDisk, ...] = ()

    def disk(self, target: str) -> DomainDisk | None:
        return next((d for d in self.disks if d.target == target), None)


def _layer(element: ET.Element, disk_type: str, fmt: str) -> ChainLayer | None:
    """The image an element (``<disk>`` or ``<backingStore>``) names, or None."""
    source = element.find("source")
    if source is None:
        return None
    index_text = source.get("index") or element.get("index")
    index = int(index_text) if index_text and index_text.isdigit() else None
    if disk_type == "network":
        path = f"{source.get('protocol', 'network')}:{source.get('name', '')}"
    elif disk_type == "volume":
        path = f"{source.get('pool', '')}/{source.get('volume', '')}"
    else:
        path = source.get("file") or source.get("dev") or source.get("dir") or ""
    if not path:
        return None
    return ChainLayer(path=path, format=fmt, index=index, kind=disk_type)


def _disk(element: ET.Element) -> DomainDisk | None:
    target = element.find("target")
    if target is None or not target.get("dev"):
        return None
    driver = element.find("driver")
    fmt = driver.get("type", "") if driver is not None else ""
    alias = element.find("alias")
    chain: list[ChainLayer] = []
    top = _layer(element, element.get("type", "file"), fmt)
    complete = False
    if top is not None:
        chain.append(top)
        backing = element.find("backingStore")
        while backing is not None:
            if len(backing) == 0 and not backing.attrib:
                complete = True                     # <backingStore/>: the chain ends here
                break
            fmt_el = backing.find("format")
            layer = _layer(backing, backing.get("type", "file"),
                           fmt_el.get("type", "") if fmt_el is not None else "")
            if layer is None:
                break
            chain.append(layer)
            backing = backing.find("backingStore")
    return DomainDisk(
        target=target.get("dev", ""),
        device=element.get("device", "disk"),
        bus=target.get("bus", ""),
        alias=alias.get("name") if alias is not None else None,
        read_only=element.find("readonly") is not None,
        shareable=element.find("shareable") is not None,
        chain=tuple(chain),
        chain_complete=complete,
    )


def parse_domain_xml(xml: str) -> DomainDescription:
    """The name, UUID, state (a live XML has ``id``) and disks of one domain's XML."""
    root = ET.fromstring(xml)
    if root.tag != "domain":
        raise ValueError(f"not a libvirt domain XML (root element <{root.tag}>)")
    disks = tuple(d for d in (_disk(e) for e in root.iterfind("./devices/disk")) if d)
    return DomainDescription(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        running=root.get("id", "-1") not in ("", "-1"),
        disks=disks,
    )

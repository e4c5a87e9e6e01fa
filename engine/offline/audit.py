"""Which file belongs to whom: the images of a directory (or a libvirt storage pool's
directory) against the domains that use them, running or not.

Deleting a VM or one of its snapshots leaves external snapshot overlays behind; two
domains may write the same file; a management GUI that sums ``virsh domblkinfo`` over
disks counts only the active layer once external snapshots exist. The audit answers
from the files and the domains' XML (:mod:`engine.offline.domain_xml`) alone — no QEMU,
no libvirt here (the caller gathers the XML):

* every image file with its format, virtual size, host allocation, backing file and
  the chains it is part of (from each image no other one uses as backing, and from each
  domain disk);
* for every file, the domain disks that use it: as the active layer (written unless
  the disk is read-only) or as a backing layer (read);
* files no domain uses; files two domains write; files one domain writes while another
  reads them as backing;
* each disk's chain and its host allocation summed over the whole chain.

A running domain's live XML lists its chain; for a stopped one (whose XML names only
the active layer) the chain is read from the image headers, as QEMU would open it.
Host allocation is ``st_blocks`` × 512, what ``du`` reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.formats.chain import full_backing_filename
from engine.formats.errors import ImageError
from engine.formats.probe import open_image
from engine.offline.domain_xml import DomainDescription, DomainDisk

MAX_DEPTH = 256


@dataclass(frozen=True, slots=True)
class ImageFacts:
    path: str
    format: str | None = None
    virtual_size: int | None = None
    allocation: int = 0
    backing: str | None = None          # resolved path of the header's backing file
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Use:
    domain: str
    disk: str
    role: str            # active | backing
    writes: bool
    running: bool
    shareable: bool = False


@dataclass(slots=True)
class _Reader:
    """Image headers, each read once."""

    cache: dict[str, ImageFacts] = field(default_factory=dict)

    def facts(self, path: str) -> ImageFacts:
        path = os.path.abspath(path)
        if path not in self.cache:
            self.cache[path] = _read(path)
        return self.cache[path]

    def header_chain(self, path: str) -> list[str]:
        """``path`` and the backing files its headers name, top first (loops cut)."""
        chain: list[str] = []
        cur: str | None = os.path.abspath(path)
        while cur is not None and cur not in chain and len(chain) < MAX_DEPTH:
            chain.append(cur)
            cur = self.facts(cur).backing
        return chain


def _read(path: str) -> ImageFacts:
    try:
        allocation = os.stat(path).st_blocks * 512
    except OSError as exc:
        return ImageFacts(path, error=exc.strerror or str(exc))
    try:
        with open_image(path) as img:
            backing = (os.path.abspath(full_backing_filename(path, img.backing_file))
                       if img.backing_file else None)
            return ImageFacts(path, str(img.format), int(img.virtual_size), allocation, backing)
    except ImageError as exc:
        return ImageFacts(path, allocation=allocation, error=str(exc))


def _disk_chain(reader: _Reader, disk: DomainDisk) -> list[str]:
    """The disk's local files, top first: the XML's chain, completed from the headers."""
    layers = [layer for layer in disk.chain if layer.local]
    if not layers:
        return []
    paths = [os.path.abspath(layer.path) for layer in layers]
    if disk.chain_complete:
        return paths
    return [*paths[:-1], *reader.header_chain(paths[-1])]


def image_files(directory: str) -> list[str]:
    """Regular files directly in ``directory`` (a pool's volumes), sorted."""
    out = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=True) and not entry.name.startswith("."):
                out.append(os.path.abspath(entry.path))
    return sorted(out)


def audit(directory: str, domains: Sequence[DomainDescription],
          extra_images: Iterable[str] = ()) -> dict[str, Any]:
    """The audit of ``directory`` against ``domains`` as JSON-ready data."""
    # Over 60 lines: one pass over the domains and then the files, building the report's sections in
    # the order they are printed.
    reader = _Reader()
    files = image_files(directory) + [os.path.abspath(p) for p in extra_images]
    in_dir = set(files)
    uses: dict[str, list[Use]] = {}
    disks: list[dict[str, Any]] = []
    problems: list[str] = []
    chains: list[dict[str, Any]] = []

    for dom in domains:
        for disk in dom.disks:
            paths = _disk_chain(reader, disk)
            if not paths:
                continue
            for depth, path in enumerate(paths):
                active = depth == 0
                uses.setdefault(path, []).append(Use(
                    dom.name, disk.target, "active" if active else "backing",
                    writes=active and not disk.read_only, running=dom.running,
                    shareable=disk.shareable))
                facts = reader.facts(path)
                if facts.error:
                    problems.append(f"{dom.name} {disk.target}: {path}: {facts.error}")
            top = reader.facts(paths[0])
            disks.append({
                "domain": dom.name, "disk": disk.target, "device": disk.device,
                "running": dom.running, "chain": paths,
                "virtual-size": top.virtual_size,
                "allocation": sum(reader.facts(p).allocation for p in paths),
            })
            chains.append({"top": paths[0], "layers": paths,
                           "used-by": [f"{dom.name}:{disk.target}"]})

    backed = {reader.facts(p).backing for p in files}
    for path in files:
        if path in backed or any(c["top"] == path for c in chains):
            continue
        chain = reader.header_chain(path)
        chains.append({"top": path, "layers": chain, "used-by": []})
        for p in chain:
            facts = reader.facts(p)
            if facts.error and p not in in_dir:
                problems.append(f"{path}: backing file {p}: {facts.error}")

    images = []
    for path in files:
        facts = reader.facts(path)
        images.append({
            "path": path, "format": facts.format, "virtual-size": facts.virtual_size,
            "allocation": facts.allocation, "backing": facts.backing, "error": facts.error,
            "chains": [i for i, c in enumerate(chains) if path in c["layers"]],
            "used-by": [_use_json(u) for u in uses.get(path, [])],
        })

    shared, read_written = [], []
    for path, users in sorted(uses.items()):
        writers = [u for u in users if u.writes]
        if len({u.domain for u in writers}) > 1:
            shared.append({"path": path, "writers": [_use_json(u) for u in writers],
                           "shareable": all(u.shareable for u in writers)})
        readers = [u for u in users if u.role == "backing"
                   and any(w.domain != u.domain for w in writers)]
        if writers and readers:
            read_written.append({"path": path, "writers": [_use_json(u) for u in writers],
                                 "readers": [_use_json(u) for u in readers]})
    return {
        "directory": os.path.abspath(directory),
        "domains": [{"name": d.name, "running": d.running} for d in domains],
        "images": images,
        "chains": chains,
        "unused": [p for p in files if p not in uses],
        "written-by-two-domains": shared,
        "written-while-another-reads": read_written,
        "disks": disks,
        "problems": problems,
    }


def _use_json(use: Use) -> dict[str, Any]:
    return {"domain": use.domain, "disk": use.disk, "role": use.role, "writes": use.writes,
            "running": use.running}

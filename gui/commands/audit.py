"""``blockgraph offline --audit DIR|POOL``: which image file belongs to which domain.

    blockgraph offline --audit /var/lib/libvirt/images            # domains from qemu:///system
    blockgraph offline --audit default --connect qemu:///system     # a storage pool by name
    blockgraph offline --audit ./images --xml vm1.xml --xml vm2.xml # domain XML files, no libvirt

Prints (or writes with ``-o``) the JSON of :func:`engine.offline.audit.audit`. Domains
come from a libvirt connection — ``--connect URI``, else ``$LIBVIRT_DEFAULT_URI``, else
``qemu:///system`` when its daemon runs here — and from ``--xml`` files. The libvirt
binding is optional, so :mod:`gui.libvirt` is imported only when a connection is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.offline.audit import audit
from engine.offline.domain_xml import DomainDescription, parse_domain_xml

SYSTEM_SOCKETS = ("/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock")


def _default_uri() -> str | None:
    uri = os.environ.get("LIBVIRT_DEFAULT_URI")
    if uri:
        return uri
    return "qemu:///system" if any(os.path.exists(s) for s in SYSTEM_SOCKETS) else None


async def _from_libvirt(uri: str, target: str) -> tuple[str, list[DomainDescription]]:
    from gui.libvirt import LibvirtHost
    from gui.libvirt.inventory import domain_descriptions, pool_directory

    async with LibvirtHost(uri) as host:
        directory = target if os.path.isdir(target) else await pool_directory(host, target)
        return directory, await domain_descriptions(host)


def run(target: str, uri: str | None, xml_files: Sequence[str]) -> dict[str, Any]:
    domains = [parse_domain_xml(Path(f).read_text()) for f in xml_files]
    directory = target
    if uri is not None:
        directory, found = asyncio.run(_from_libvirt(uri, target))
        domains = [*found, *domains]
    elif not os.path.isdir(target):
        raise ValueError(f"{target} is not a directory, and no libvirt connection to look up "
                         "a storage pool of that name (give --connect URI)")
    report = audit(directory, domains)
    report["libvirt"] = uri
    return report


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="blockgraph offline --audit", description=(
        "Which image belongs to which domain: chains, users, leftovers, shared writers, "
        "each disk's allocation over its whole chain (JSON)."))
    parser.add_argument("target", metavar="DIR|POOL")
    parser.add_argument("--connect", metavar="URI", help="libvirt URI for domains and pools")
    parser.add_argument("--no-libvirt", action="store_true", help="use --xml files only")
    parser.add_argument("--xml", action="append", default=[], metavar="FILE",
                        help="a domain XML file (virsh dumpxml) to take into account")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the JSON here")
    args = parser.parse_args(list(argv))
    uri = None if args.no_libvirt else (args.connect or _default_uri())
    try:
        report = run(args.target, uri, args.xml)
    except Exception as exc:       # one clear line, no traceback
        print(f"blockgraph offline --audit: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0

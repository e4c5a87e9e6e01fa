"""The libvirt connections this host offers, and their domains.

Candidates: ``$LIBVIRT_DEFAULT_URI``; ``qemu:///system`` when its daemon's socket exists
(``/run/libvirt/libvirt-sock`` for libvirtd, ``virtqemud-sock`` for the modular
daemon); ``qemu:///session`` when the user's session daemon has a socket; and any URI
given. Each is opened and asked for its domains; one that cannot be opened is listed
with libvirt's reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gui.libvirt import LibvirtError, LibvirtHost, domain_address

SYSTEM_SOCKETS = (Path("/run/libvirt/libvirt-sock"), Path("/run/libvirt/virtqemud-sock"))


@dataclass(frozen=True, slots=True)
class UriListing:
    uri: str
    error: str | None = None
    domains: tuple[tuple[str, str, str], ...] = field(default=())   # (address, name, state)


def candidate_uris(extra: Iterable[str] = ()) -> list[str]:
    uris: list[str] = list(extra)
    default = os.environ.get("LIBVIRT_DEFAULT_URI")
    if default:
        uris.append(default)
    if any(p.exists() for p in SYSTEM_SOCKETS):
        uris.append("qemu:///system")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or str(Path.home() / ".cache")
    if any((Path(runtime) / "libvirt" / s).exists() for s in ("libvirt-sock", "virtqemud-sock")):
        uris.append("qemu:///session")
    return list(dict.fromkeys(uris))


async def _list(uri: str) -> UriListing:
    host = LibvirtHost(uri)
    try:
        await host.open()
        domains = await host.domains()
    except LibvirtError as exc:
        return UriListing(uri, error=str(exc))
    finally:
        await host.close()
    return UriListing(uri, domains=tuple((domain_address(uri, d.name), d.name, d.state.value)
                                         for d in domains))


def list_uris(uris: Iterable[str]) -> list[UriListing]:
    async def run() -> list[UriListing]:
        return list(await asyncio.gather(*(_list(u) for u in uris)))

    return asyncio.run(run())

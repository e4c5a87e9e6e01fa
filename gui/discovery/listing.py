"""Everything :mod:`gui.discovery` finds, as one list of offers with a line each."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gui.discovery.sockets import find_monitors, probe_all


@dataclass(frozen=True, slots=True)
class Offer:
    """Something to connect to: ``address`` is what ``--connect`` takes."""

    kind: str           # libvirt | domain | qmp
    address: str
    description: str
    usable: bool = True


def libvirt_offers(uris: Iterable[str]) -> list[Offer]:
    """The libvirt connections and their domains (empty when the binding is missing).

    The binding is optional (``blockgraph[libvirt]``), so it is imported here, lazily.
    """
    try:
        from gui.discovery.libvirt_uris import candidate_uris, list_uris
    except ImportError:
        return []
    offers = []
    for listing in list_uris(candidate_uris(uris)):
        if listing.error is not None:
            offers.append(Offer("libvirt", listing.uri, f"libvirt: {listing.error}", False))
            continue
        running = sum(1 for *_, state in listing.domains if state in ("running", "paused"))
        offers.append(Offer("libvirt", listing.uri,
                            f"libvirt, {len(listing.domains)} domains ({running} running)"))
        for address, name, state in listing.domains:
            offers.append(Offer("domain", address, f"  domain {name}: {state}",
                                state in ("running", "paused")))
    return offers


def qmp_offers(extra_dirs: Iterable[Path] = (), timeout: float = 1.0) -> list[Offer]:
    monitors = find_monitors(extra_dirs)
    probes = probe_all([m.address for m in monitors], timeout)
    return [Offer("qmp", m.address, f"{m.owner}: {p.state}" + (f", {p.detail}" if p.detail
                                                                  else ""), p.state == "free")
            for m, p in zip(monitors, probes, strict=True)]


def discover(uris: Sequence[str] = (), extra_dirs: Iterable[Path] = ()) -> list[Offer]:
    """libvirt connections with their domains, then QMP monitors."""
    return [*libvirt_offers(uris), *qmp_offers(extra_dirs)]


def format_offers(offers: Sequence[Offer]) -> str:
    if not offers:
        return "nothing found: no libvirt connection, no QMP monitor in the process list"
    width = max(len(o.address) for o in offers)
    return "\n".join(f"{o.address:<{width}}  {o.description.strip()}" for o in offers)


def main(argv: Sequence[str]) -> int:
    """``blockgraph --list [--connect URI ...] [--dir DIR ...]``."""
    parser = argparse.ArgumentParser(prog="blockgraph --list", description=(
        "List what this host offers: libvirt URIs with their domains, QMP monitors."))
    parser.add_argument("--connect", action="append", default=[], metavar="URI",
                        help="a libvirt URI to list too (qemu+ssh://HOST/system)")
    parser.add_argument("--dir", action="append", default=[], type=Path,
                        help="a directory of *.qmp sockets to look in too")
    args = parser.parse_args(list(argv))
    print(format_offers(discover(args.connect, args.dir)))
    return 0

"""Fixtures for the libvirt tests: one private libvirtd per test run (root, ``--daemon``,
in its own namespaces: :mod:`tests.support.libvirtd`) and one TCG domain per module.

Where the machine cannot run libvirtd the tests are skipped with the reason in one
line — except in CI (``CI`` set), where that is a failure: these tests run there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.libvirtd import LibvirtDaemon, LibvirtUnavailable, domain_xml
from tests.support.qemu import create, qemu_io


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"libvirt tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibvirtDaemon]:
    daemon = LibvirtDaemon(tmp_path_factory.mktemp("libvirtd"))
    try:
        daemon.start()
    except LibvirtUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield daemon
    finally:
        daemon.stop()


@dataclass
class Domain:
    """A running domain: vda is ``top.qcow2`` over ``base.qcow2`` (data in both), sda a
    CD-ROM with ``cd1.iso``; ``cd2.iso`` is there to change media to."""

    name: str
    dir: Path
    daemon: LibvirtDaemon

    @property
    def uri(self) -> str:
        return self.daemon.uri

    def virsh(self, *args: str) -> str:
        return self.daemon.virsh(*args).stdout

    def blklist(self) -> dict[str, str]:
        """``virsh domblklist``: target -> source, as libvirt sees it."""
        out = {}
        for line in self.virsh("domblklist", self.name).splitlines():
            target, _, source = line.strip().partition(" ")
            if target:
                out[target] = source.strip()
        return out


def start_domain(daemon: LibvirtDaemon, name: str, directory: Path) -> Domain:
    directory.mkdir(parents=True, exist_ok=True)
    base = create(directory / "base.qcow2", "16M")
    qemu_io(base, "write -P 0x11 0 256k")
    top = create(directory / "top.qcow2", "16M", backing=str(base))
    qemu_io(top, "write -P 0x22 64k 64k")
    for cd in ("cd1.iso", "cd2.iso"):
        create(directory / cd, "1M", fmt="raw")
    xml = directory / "domain.xml"
    xml.write_text(domain_xml(name, top, directory / "cd1.iso"))
    daemon.virsh("define", str(xml))
    daemon.virsh("start", name)
    return Domain(name, directory, daemon)


def remove_domain(domain: Domain) -> None:
    domain.daemon.virsh("destroy", domain.name, check=False)
    domain.daemon.virsh("undefine", domain.name, "--snapshots-metadata", check=False)


@pytest.fixture(scope="module")
def domain(libvirtd: LibvirtDaemon, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Domain]:
    """One running domain for the whole module, named after it."""
    name = "bg-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    dom = start_domain(libvirtd, name.replace("_", "-"), tmp_path_factory.mktemp(name))
    try:
        yield dom
    finally:
        remove_domain(dom)

"""The audit of a directory against domain XML: who uses which file, what is left over,
who writes what another reads — from image headers written by qemu-img."""

from __future__ import annotations

import os
from pathlib import Path

from engine.offline.audit import audit
from engine.offline.domain_xml import parse_domain_xml
from tests.support.qemu import create, qemu_io


def xml(name: str, *disks: tuple[str, Path], running: bool = False,
        readonly: tuple[str, ...] = ()) -> str:
    body = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{path}'/><target dev='{target}' bus='virtio'/>"
        f"{'<readonly/>' if target in readonly else ''}</disk>" for target, path in disks)
    state = " id='3'" if running else ""
    return f"<domain type='kvm'{state}><name>{name}</name><devices>{body}</devices></domain>"


def du(*paths: Path) -> int:
    return sum(os.stat(p).st_blocks * 512 for p in paths)


def test_owners_leftovers_and_conflicts(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    base = create(pool / "base.qcow2", "4M")
    qemu_io(base, "write -P 1 0 1M")
    vm1 = create(pool / "vm1.qcow2", "4M", backing="base.qcow2")      # relative name
    qemu_io(vm1, "write -P 2 0 512k")
    vm1_snap = create(pool / "vm1-snap.qcow2", "4M", backing=str(vm1))
    left = create(pool / "vm1-old-snap.qcow2", "4M", backing=str(vm1))   # a leftover
    shared = create(pool / "shared.qcow2", "4M")
    create(tmp_path / "gone.qcow2", "4M")
    broken = create(pool / "broken.qcow2", "4M", backing=str(tmp_path / "gone.qcow2"))
    (tmp_path / "gone.qcow2").unlink()
    domains = [
        parse_domain_xml(xml("vm1", ("vda", vm1_snap), ("vdb", shared), running=True)),
        parse_domain_xml(xml("vm2", ("vda", shared))),
        parse_domain_xml(xml("vm3", ("vda", base))),           # boots on vm1's base!
        parse_domain_xml(xml("ro", ("vda", vm1), readonly=("vda",))),
    ]
    report = audit(str(pool), domains)
    paths = {Path(i["path"]).name: i for i in report["images"]}

    assert [Path(p).name for p in report["unused"]] == ["broken.qcow2", "vm1-old-snap.qcow2"]
    assert {(u["domain"], u["disk"], u["role"], u["writes"])
            for u in paths["vm1.qcow2"]["used-by"]} == {
        ("vm1", "vda", "backing", False), ("ro", "vda", "active", False)}
    assert paths["base.qcow2"]["backing"] is None
    assert paths["vm1.qcow2"]["backing"] == str(base)

    (written,) = report["written-by-two-domains"]
    assert written["path"] == str(shared)
    assert {w["domain"] for w in written["writers"]} == {"vm1", "vm2"}
    (read,) = report["written-while-another-reads"]
    assert read["path"] == str(base)
    assert [w["domain"] for w in read["writers"]] == ["vm3"]
    assert {r["domain"] for r in read["readers"]} == {"vm1", "ro"}

    disk = next(d for d in report["disks"] if (d["domain"], d["disk"]) == ("vm1", "vda"))
    assert disk["chain"] == [str(vm1_snap), str(vm1), str(base)]
    assert disk["allocation"] == du(vm1_snap, vm1, base)
    assert disk["allocation"] > du(vm1_snap)          # what counting the top alone misses
    assert disk["virtual-size"] == 4 << 20

    leftover_chain = report["chains"][paths["vm1-old-snap.qcow2"]["chains"][0]]
    assert leftover_chain["layers"] == [str(left), str(vm1), str(base)]
    assert leftover_chain["used-by"] == []
    assert any("gone.qcow2" in p for p in report["problems"])
    assert paths["broken.qcow2"]["error"] is None and broken.exists()


def test_a_live_xml_chain_is_taken_as_libvirt_lists_it(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", "1M")
    top = create(tmp_path / "top.qcow2", "1M", backing=str(base))
    live = (f"<domain id='1'><name>v</name><devices><disk type='file' device='disk'>"
            f"<source file='{top}' index='2'/><backingStore type='file' index='1'>"
            f"<format type='qcow2'/><source file='{base}'/><backingStore/></backingStore>"
            f"<target dev='vda'/></disk></devices></domain>")
    description = parse_domain_xml(live)
    (disk,) = description.disks
    assert description.running and disk.chain_complete
    assert [disk.index_name(layer) for layer in disk.chain] == ["vda[2]", "vda[1]"]
    report = audit(str(tmp_path), [description])
    assert report["unused"] == []
    assert report["disks"][0]["chain"] == [str(top), str(base)]

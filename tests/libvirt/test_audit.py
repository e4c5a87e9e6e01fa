"""``blockgraph offline --audit POOL --connect URI`` on a real libvirtd: a storage pool's
files against a running domain (its live XML) and a stopped one (headers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.libvirt.conftest import Domain
from tests.support.qemu import create

REPO = Path(__file__).resolve().parents[2]


def test_audit_of_a_pool_names_owners_and_leftovers(domain: Domain, tmp_path: Path) -> None:
    # the pool is the running domain's directory; a stopped domain boots on a copy of
    # the base the running one reads as backing, and one overlay is nobody's
    leftover = create(domain.dir / "leftover.qcow2", "16M",
                      backing=str(domain.dir / "base.qcow2"))
    stopped_xml = (domain.dir / "domain.xml").read_text().replace(
        f"<name>{domain.name}</name>", "<name>bg-audit-stopped</name>").replace(
        str(domain.dir / "top.qcow2"), str(domain.dir / "base.qcow2"), 1)
    (tmp_path / "stopped.xml").write_text(stopped_xml)
    domain.virsh("define", str(tmp_path / "stopped.xml"))
    domain.virsh("pool-define-as", "bg-audit", "dir", "--target", str(domain.dir))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "gui.cli", "offline", "--audit", "bg-audit", "--connect",
             domain.uri, "-o", str(tmp_path / "audit.json")],
            capture_output=True, text=True, timeout=120, cwd=REPO)
    finally:
        domain.virsh("pool-undefine", "bg-audit")
        domain.virsh("undefine", "bg-audit-stopped")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["directory"] == str(domain.dir)
    assert str(leftover) in report["unused"]
    assert str(domain.dir / "cd2.iso") in report["unused"]

    running = next(d for d in report["disks"]
                   if (d["domain"], d["disk"]) == (domain.name, "vda"))
    assert running["running"] and running["chain"][0] == domain.blklist()["vda"]
    assert running["allocation"] == sum(os.stat(p).st_blocks * 512 for p in running["chain"])
    base = str(domain.dir / "base.qcow2")
    assert running["chain"][-1] == base
    stopped = next(d for d in report["disks"] if d["domain"] == "bg-audit-stopped"
                   and d["disk"] == "vda")
    assert not stopped["running"] and stopped["chain"] == [base]
    (conflict,) = [c for c in report["written-while-another-reads"] if c["path"] == base]
    assert [w["domain"] for w in conflict["writers"]] == ["bg-audit-stopped"]
    assert [r["domain"] for r in conflict["readers"]] == [domain.name]
    cd1 = next(i for i in report["images"] if i["path"] == str(domain.dir / "cd1.iso"))
    assert {(u["domain"], u["disk"], u["writes"]) for u in cd1["used-by"]} == {
        (domain.name, "sda", False), ("bg-audit-stopped", "sda", False)}


def test_audit_of_an_unknown_pool_says_so(domain: Domain) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gui.cli", "offline", "--audit", "no-such-pool", "--connect",
         domain.uri], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("blockgraph offline --audit: Storage pool not found: no "
                                   "storage pool with matching name 'no-such-pool'")

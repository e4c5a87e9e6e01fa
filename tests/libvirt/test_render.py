"""``blockgraph render --connect qemu:///... --domain NAME``: the domain's block nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.libvirt.conftest import Domain


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gui.cli", "render", *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])


def test_render_lists_the_domains_block_nodes_and_its_disks(domain: Domain, tmp_path) -> None:
    out = tmp_path / "g.json"
    proc = render("--connect", domain.uri, "--domain", domain.name, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    graph = json.loads(out.read_text())
    listed = json.loads(domain.virsh("qemu-monitor-command", domain.name,
                                     '{"execute":"query-named-block-nodes",'
                                     '"arguments":{"flat":true}}'))["return"]
    names = {n["key"] for n in graph["nodes"] if n["kind"] == "block-node"}
    assert names == {n["node-name"] for n in listed}
    vda = graph["disks"]["vda"]
    assert vda["chain"][0]["path"] == domain.blklist()["vda"]
    assert vda["chain"][0]["name"].startswith("vda[")
    assert vda["node"] == vda["chain"][0]["node"]
    assert graph["disks"]["sda"]["device"] == "cdrom"
    # the same with the domain in the address
    again = tmp_path / "again.json"
    assert render("--connect", f"{domain.uri}#{domain.name}", "-o", str(again)).returncode == 0
    assert {n["key"] for n in json.loads(again.read_text())["nodes"]} == \
        {n["key"] for n in graph["nodes"]}


def test_render_says_which_domain_is_missing(domain: Domain, tmp_path) -> None:
    proc = render("--connect", domain.uri, "--domain", "no-such-vm", "-o",
                  str(tmp_path / "g.json"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("blockgraph render: Domain not found: no domain with "
                                   "matching name 'no-such-vm'")
    proc = render("--connect", domain.uri, "-o", str(tmp_path / "g.json"))
    assert proc.returncode == 1 and "--domain NAME" in proc.stderr

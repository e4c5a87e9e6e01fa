"""``blockgraph plan --connect qemu:///… --domain NAME``: edits of a running domain through
libvirt's own APIs, each checked with virsh (``domblklist``, ``snapshot-list``,
``dumpxml``) — what a virsh user would look at.

One domain serves the module; the tests run in order and each starts from the chain
the one before left (vda: an active layer over at least one backing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.offline.domain_xml import parse_domain_xml
from tests.libvirt.conftest import Domain

ROOT = Path(__file__).resolve().parents[2]


def plan(domain: Domain, *args: str, apply: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["--connect", domain.uri, "--domain", domain.name, *(["--apply"] if apply else []),
            *args]
    try:
        return subprocess.run([sys.executable, "-m", "gui.cli", "plan", *argv],
                              capture_output=True, text=True, timeout=180, cwd=ROOT)
    except subprocess.TimeoutExpired:
        # what QEMU and libvirt said meanwhile, for whoever reads the failure
        qemu_log = domain.daemon.base / "log" / "qemu" / f"{domain.name}.log"
        tails = [f"{path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                 for path in (qemu_log, domain.daemon.log) if path.exists()]
        pytest.fail(f"blockgraph plan {' '.join(args)} did not end\n" + "\n".join(tails))


def chain(domain: Domain, target: str = "vda") -> list[str]:
    """The disk's chain, top first, from libvirt's live XML (``virsh dumpxml``)."""
    disk = parse_domain_xml(domain.virsh("dumpxml", domain.name)).disk(target)
    assert disk is not None
    return [layer.path for layer in disk.chain]


def names(domain: Domain, target: str = "vda") -> list[str]:
    """libvirt's names of the disk's layers, top first (``vda[3]``: by libvirt's index)."""
    disk = parse_domain_xml(domain.virsh("dumpxml", domain.name)).disk(target)
    assert disk is not None
    return [disk.index_name(layer) for layer in disk.chain]


def _plain(filename: str) -> str:
    """The file a ``json:`` name opens (QEMU names an image so after a reopen)."""
    if filename.startswith("json:"):
        return str(json.loads(filename[5:])["file"]["filename"])
    return filename


def qemu_chain(domain: Domain) -> list[str]:
    """vda's chain as QEMU reports it (``query-block`` through virsh)."""
    blocks = json.loads(domain.virsh("qemu-monitor-command", domain.name,
                                     '{"execute":"query-block"}'))["return"]
    (vda,) = [b for b in blocks if b.get("qdev", "").endswith("virtio-disk0/virtio-backend")
              or b.get("qdev") == "virtio-disk0"]
    out, image = [], vda["inserted"]["image"]
    while image is not None:
        out.append(_plain(image["filename"]))
        image = image.get("backing-image")
    return out


def block_jobs(domain: Domain) -> list[dict]:
    """QEMU's block jobs (``query-block-jobs`` through virsh)."""
    return list(json.loads(domain.virsh("qemu-monitor-command", domain.name,
                                        '{"execute":"query-block-jobs"}'))["return"])


def test_snapshot_shows_in_domblklist_and_snapshot_list(domain: Domain) -> None:
    before = chain(domain)
    path = domain.dir / "s1.qcow2"
    proc = plan(domain, "snapshot", "vda", "--file", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"virsh snapshot-create-as {domain.name} s1 --disk-only --atomic" in proc.stdout
    assert "# applied:" in proc.stdout
    assert domain.blklist()["vda"] == str(path)
    assert domain.blklist()["sda"] == str(domain.dir / "cd1.iso")
    assert "s1" in domain.virsh("snapshot-list", domain.name, "--name").split()
    assert chain(domain) == [str(path), *before]
    assert qemu_chain(domain) == chain(domain)


def test_stream_pulls_the_chain_into_the_active_layer(domain: Domain) -> None:
    before = chain(domain)
    assert len(before) == 3
    base = names(domain)[2]
    printed = plan(domain, "stream", "vda", "--base", base, apply=False)
    assert printed.returncode == 0, printed.stderr
    assert f"virsh blockpull {domain.name} vda --base {base} --wait" in printed.stdout
    assert chain(domain) == before                        # printing changed nothing
    proc = plan(domain, "stream", "vda", "--base", base)
    assert proc.returncode == 0, proc.stderr
    assert chain(domain) == [before[0], before[2]]
    assert domain.blklist()["vda"] == before[0]
    assert qemu_chain(domain) == chain(domain)


def test_active_commit_pivots_and_domblklist_shows_the_base(domain: Domain) -> None:
    before = chain(domain)
    assert plan(domain, "snapshot", "vda", "--file", str(domain.dir / "s2.qcow2")
                ).returncode == 0
    assert domain.blklist()["vda"] == str(domain.dir / "s2.qcow2")
    proc = plan(domain, "commit", "vda", "--base", names(domain)[1])
    assert proc.returncode == 0, proc.stderr
    assert "--active" in proc.stdout and "--pivot" in proc.stdout
    assert domain.blklist()["vda"] == before[0]
    assert chain(domain) == before
    assert qemu_chain(domain) == chain(domain)


def test_intermediate_commit_drops_a_layer(domain: Domain) -> None:
    before = chain(domain)
    assert plan(domain, "snapshot", "vda", "--file", str(domain.dir / "s3.qcow2")
                ).returncode == 0
    layers = names(domain)
    proc = plan(domain, "commit", layers[1], "--base", layers[2])   # the old top, down
    assert proc.returncode == 0, proc.stderr
    assert f"--top {layers[1]} --base {layers[2]}" in proc.stdout
    assert chain(domain) == [str(domain.dir / "s3.qcow2"), *before[1:]]
    assert domain.blklist()["vda"] == str(domain.dir / "s3.qcow2")
    assert qemu_chain(domain) == chain(domain)


def test_media_change_and_eject_show_in_domblklist(domain: Domain) -> None:
    cd2 = str(domain.dir / "cd2.iso")
    proc = plan(domain, "change-medium", "sda", cd2)
    assert proc.returncode == 0, proc.stderr
    assert f"virsh change-media {domain.name} sda {cd2} --update --live" in proc.stdout
    assert domain.blklist()["sda"] == cd2
    proc = plan(domain, "eject", "sda")
    assert proc.returncode == 0, proc.stderr
    assert domain.blklist()["sda"] == "-"
    assert plan(domain, "change-medium", "sda", str(domain.dir / "cd1.iso")).returncode == 0
    assert domain.blklist()["sda"] == str(domain.dir / "cd1.iso")


def test_libvirts_refusals_and_edits_without_an_api(domain: Domain) -> None:
    before, layers = chain(domain), names(domain)
    proc = plan(domain, "stream", layers[1])
    assert proc.returncode == 2
    assert "libvirt streams into a disk's active layer only" in proc.stderr
    proc = plan(domain, "change-medium", "vda", str(domain.dir / "cd2.iso"))
    assert proc.returncode == 2 and "not a removable drive" in proc.stderr
    proc = plan(domain, "rebase", "vda", "--onto", layers[-1])
    assert proc.returncode == 2
    assert "libvirt has no API for a backing change by reopen" in proc.stderr
    assert "--confirm-passthrough" in proc.stderr and "tainted" in proc.stderr
    proc = plan(domain, "--confirm-passthrough", "delete", layers[-1])
    assert proc.returncode == 2 and "libvirt owns" in proc.stderr
    proc = plan(domain, "snapshot", "vda", "--file", str(domain.dir / "s1.qcow2"))
    assert proc.returncode == 1                  # libvirt's own refusal: the file exists
    assert proc.stderr.strip().startswith("blockgraph plan: ")
    assert chain(domain) == before
    proc = plan(domain, "--no-check", "stream", "vda")
    assert proc.returncode == 2 and "--no-check is for QMP peers" in proc.stderr
    proc = plan(domain, "stream", "no-such-node")
    assert proc.returncode == 2 and "no-such-node" in proc.stderr


def test_a_missing_domain_is_named(domain: Domain) -> None:
    proc = subprocess.run([sys.executable, "-m", "gui.cli", "plan", "--connect", domain.uri,
                           "--domain", "no-such-vm", "stream", "vda"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    assert "Domain not found: no domain with matching name 'no-such-vm'" in proc.stderr


def test_copy_and_a_jobs_abort_or_pivot(domain: Domain) -> None:
    before = chain(domain)
    assert plan(domain, "snapshot", "vda", "--file", str(domain.dir / "s5.qcow2")
                ).returncode == 0
    copy = str(domain.dir / "copy.qcow2")
    proc = plan(domain, "copy", "vda", "--file", copy, "--shallow")
    assert proc.returncode == 0, proc.stderr
    assert (f"virsh blockcopy {domain.name} vda {copy} --format qcow2 --shallow "
            "--transient-job --wait --pivot") in proc.stdout
    assert domain.blklist()["vda"] == copy
    assert chain(domain) == [copy, *before]
    assert qemu_chain(domain) == chain(domain)
    proc = plan(domain, "abort-job", "vda")
    assert proc.returncode == 2 and "Block job 'vda' not found" in proc.stderr
    # a commit that waits, ready, for its pivot: cancelled, then completed, by disk name
    domain.virsh("blockcommit", domain.name, "vda", "--active", "--shallow", "--wait")
    assert [j["ready"] for j in block_jobs(domain)] == [True]
    proc = plan(domain, "abort-job", "vda")
    assert proc.returncode == 0, proc.stderr
    assert f"virsh blockjob {domain.name} vda --abort" in proc.stdout
    assert chain(domain) == [copy, *before]
    assert block_jobs(domain) == []
    domain.virsh("blockcommit", domain.name, "vda", "--active", "--shallow", "--wait")
    proc = plan(domain, "pivot-job", "vda")
    assert proc.returncode == 0, proc.stderr
    assert f"virsh blockjob {domain.name} vda --pivot" in proc.stdout
    assert chain(domain) == before
    assert domain.blklist()["vda"] == before[0]
    assert qemu_chain(domain) == chain(domain)


def test_passthrough_only_once_confirmed_and_libvirt_does_not_know(domain: Domain) -> None:
    """Last: it leaves QEMU's graph different from libvirt's XML, as the warning says."""
    assert plan(domain, "snapshot", "vda", "--file", str(domain.dir / "s4.qcow2")
                ).returncode == 0
    before = chain(domain)
    assert len(before) == 3
    proc = plan(domain, "--confirm-passthrough", "rebase", "vda", "--onto", names(domain)[2])
    assert proc.returncode == 0, proc.stderr
    assert "(QMP passthrough)" in proc.stdout.splitlines()[0]
    assert "# confirmed: libvirt has no API for this edit." in proc.stdout
    assert "libvirt marks the domain tainted" in proc.stdout
    assert f"virsh qemu-monitor-command {domain.name} '" in proc.stdout
    assert qemu_chain(domain) == [before[0], before[2]]
    assert chain(domain) == before            # libvirt did not see it


def test_libvirt_options_on_a_qmp_address_are_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gui.cli", "plan", "--connect",
                           f"unix:{tmp_path}/none.sock", "--domain", "vm1", "stream", "top"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert "--domain and --confirm-passthrough are for libvirt URIs" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "gui.cli", "plan", "--connect",
                           f"unix:{tmp_path}/none.sock", "copy", "top", "--file", "c.qcow2"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "copy is an edit of a libvirt domain" in proc.stderr

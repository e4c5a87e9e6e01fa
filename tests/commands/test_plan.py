"""``blockgraph plan`` against a real qemu-storage-daemon 7.2 (and qemu-system-x86_64 for
removable media): every intent applied, refused with QEMU's own text (exit 2, the same
text QEMU gives when the unchecked plan is sent), printed unchecked with ``--no-check``;
the printed plan runs unchanged with ``blockgraph replay`` and with qmp-shell."""

from __future__ import annotations

import asyncio
import io
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gui.commands import plan as plan_cmd
from gui.commands import replay as replay_cmd
from gui.scripting.qmp_shell import WAIT_RE
from gui.scripting.signature import graph_signature
from tests.support.peer import Peer, RawMonitor
from tests.support.qemu import QEMU_IMG, create, qemu_io, run

pytestmark = pytest.mark.qemu
QMP_SHELL = str(Path(sys.executable).parent / "qmp-shell")
MIB = 1 << 20


@dataclass
class Result:
    code: int
    out: str
    err: str


async def plan(address: str, *argv: str) -> Result:
    """``blockgraph plan --connect ADDRESS ARGV...`` in this process."""
    args = plan_cmd._parser().parse_args(["--connect", address, *argv])
    out, err = io.StringIO(), io.StringIO()
    code = await plan_cmd.run(args, out, err)
    return Result(code, out.getvalue(), err.getvalue())


def header(path: Path) -> dict[str, Any]:
    """``qemu-img info`` of an image the daemon holds open (``-U``)."""
    return json.loads(run(QEMU_IMG, "info", "-U", "--output=json", str(path)).stdout)


def chain(d: Path) -> dict[str, Path]:
    """base <- low <- mid <- top with data in each layer, relative backing names as
    qemu-img users write them; and a standalone image."""
    files = {n: d / f"{n}.qcow2" for n in ("base", "low", "mid", "top", "spare")}
    create(files["base"], MIB)
    create(files["low"], MIB, backing="base.qcow2")
    create(files["mid"], MIB, backing="low.qcow2")
    create(files["top"], MIB, backing="mid.qcow2")
    create(files["spare"], MIB)
    for i, name in enumerate(("base", "low", "mid", "top")):
        qemu_io(files[name], f"write -P {0x11 * (i + 1)} {i * 64}k 64k")
    return files


def open_from_headers(peer: Peer, files: dict[str, Path]) -> None:
    """``top`` opened by name, the chain below it from its headers (auto-named), and a
    standalone ``spare`` added as libvirt adds nodes."""
    peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "top",
                             "file": {"driver": "file", "filename": str(files["top"])}})
    peer.ok("blockdev-add", {"driver": "file", "node-name": "spare-file",
                             "filename": str(files["spare"])})
    peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "spare", "file": "spare-file"})


def names(peer: Peer) -> dict[str, str]:
    """The format node of each image by file stem (``mid`` -> ``#block123``)."""
    out = {}
    for n in peer.ok("query-named-block-nodes", {"flat": True}):
        if n["drv"] == "qcow2":
            out[Path(n["file"]).stem] = n["node-name"]
    return out


def backing_of(peer: Peer, node: str) -> str | None:
    graph = peer.ok("x-debug-query-block-graph")
    ids = {n["id"]: n["name"] for n in graph["nodes"]}
    me = next(n["id"] for n in graph["nodes"] if n["name"] == node)
    return next((ids[e["child"]] for e in graph["edges"]
                 if e["parent"] == me and e["name"] == "backing"), None)


async def refused_with_qemus_text(address: str, *intent: str) -> str:
    """The intent is refused before anything is sent (exit 2, QEMU's text on stderr,
    nothing on stdout); ``--no-check`` prints the plan; ``--no-check --apply`` sends it
    and QEMU answers with that same text (exit 1). Returns the text."""
    refused = await plan(address, *intent)
    assert refused.code == 2 and refused.out == "", refused
    text = refused.err.strip()
    assert text and "\n" not in text
    printed = await plan(address, "--no-check", *intent)
    assert printed.code == 0 and printed.err == ""
    assert any(not line.startswith("#") for line in printed.out.splitlines()), printed.out
    sent = await plan(address, "--no-check", "--apply", *intent)
    assert sent.code == 1, sent
    assert sent.err.strip() == text
    return text


# -- the acceptance: auto-named nodes streamed, committed; snapshots name the plain file --
async def test_apply_streams_commits_and_snapshots_a_chain_opened_from_headers(
        peer: Peer, tmp_path: Path) -> None:
    files = chain(tmp_path)
    open_from_headers(peer, files)
    n = names(peer)
    assert all(n[k].startswith("#block") for k in ("mid", "low", "base"))

    # stream into the auto-named mid, down to base: low's data moves up
    r = await plan(peer.address, "--apply", "stream", n["mid"], "--base", n["base"])
    assert r.code == 0, r
    assert f"block-stream job-id=stream-{n['mid'][1:]} device={n['mid']}" in r.out
    assert f"#   {n['mid']}: backing {n['low']} -> {n['base']}" in r.out
    assert backing_of(peer, n["mid"]) == n["base"]
    assert header(files["mid"])["backing-filename"] == str(files["base"])

    # commit the auto-named mid into the auto-named base (top's header follows)
    r = await plan(peer.address, "--apply", "commit", n["mid"], "--base", n["base"])
    assert r.code == 0, r
    assert f"top: backing {n['mid']} -> {n['base']}" in r.out
    assert backing_of(peer, "top") == n["base"]
    assert header(files["top"])["backing-filename"] == str(files["base"])

    # snapshot top: the overlay's header names top's plain file, as
    # blockdev-snapshot-sync writes it
    r = await plan(peer.address, "--apply", "snapshot", "top", "--file",
                   str(tmp_path / "top-1.qcow2"))
    assert r.code == 0, r
    assert "+ node top-1 (qcow2" in r.out and "top-1: backing" not in r.out
    assert backing_of(peer, "top-1") == "top"
    info = header(tmp_path / "top-1.qcow2")
    assert (info["backing-filename"], info["backing-filename-format"]) == (
        str(files["top"]), "qcow2")
    peer.ok("blockdev-snapshot-sync", {"node-name": "spare", "snapshot-node-name": "by-qemu",
                                       "snapshot-file": str(tmp_path / "by-qemu.qcow2")})
    assert header(tmp_path / "by-qemu.qcow2")["backing-filename"] == str(files["spare"])

    # the data the guest reads is what it read before: each layer's pattern
    peer.stop()
    for i in range(4):
        qemu_io(tmp_path / "top-1.qcow2", f"read -P {0x11 * (i + 1)} {i * 64}k 64k")


async def test_a_json_named_node_is_snapshotted_onto_its_plain_file(
        peer: Peer, tmp_path: Path) -> None:
    """A node whose backing link was cut (``backing: null``) has a ``json:`` name; its
    overlay's header names the image's plain file all the same."""
    files = chain(tmp_path)
    peer.ok("blockdev-add", {"driver": "qcow2", "node-name": "cut", "backing": None,
                             "file": {"driver": "file", "filename": str(files["low"])}})
    filename = next(n["file"] for n in peer.ok("query-named-block-nodes", {"flat": True})
                    if n["node-name"] == "cut")
    assert filename.startswith("json:")
    r = await plan(peer.address, "--apply", "snapshot", "cut", "--file",
                   str(tmp_path / "cut-1.qcow2"), "--node-name", "cut1")
    assert r.code == 0, r
    assert header(tmp_path / "cut-1.qcow2")["backing-filename"] == str(files["low"])


# -- the printed plan runs unchanged with replay and with qmp-shell ------------------------
#: edits of auto-named nodes, one after another: top-1 <- top <- spare at the end
INTENTS = (
    ("stream", "{mid}", "--base", "{base}"),
    ("read-only", "{mid}", "off"),
    ("rebase", "{mid}", "--onto", "{spare}"),
    ("commit", "{mid}", "--base", "{spare}"),
    ("snapshot", "top", "--file", "{dir}/top-1.qcow2"),
)


def _fill(words: tuple[str, ...], n: dict[str, str], d: Path) -> list[str]:
    return [w.format(dir=d, **n) for w in words]


async def test_the_printed_plan_runs_unchanged_with_replay(peer: Peer, tmp_path: Path) -> None:
    files = chain(tmp_path)
    open_from_headers(peer, files)
    for intent in INTENTS:
        n = names(peer)
        printed = await plan(peer.address, *_fill(intent, n, tmp_path))
        assert printed.code == 0, printed
        script = tmp_path / f"{intent[0]}.qmp"
        script.write_text(printed.out)
        args = replay_cmd._parser().parse_args([str(script), "--connect", peer.address])
        out = io.StringIO()
        assert await replay_cmd.run(args, out) == 0, out.getvalue()
    assert backing_of(peer, "top") == "spare"
    assert backing_of(peer, "top-1") == "top"


def _qmp_shell(address_socket: str, text: str, aux: RawMonitor) -> str:
    """Type ``text`` into qmp-shell as a person would: each command line as it is, the
    next only once qmp-shell printed the reply to the last (as a person reads it), and
    at a ``# wait for job`` comment, wait (watching on another monitor) before going on.
    Returns qmp-shell's output."""
    proc = subprocess.Popen([QMP_SHELL, address_socket], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdin is not None and proc.stdout is not None
    printed = bytearray()

    def until_reply(seen: int, timeout: float = 30) -> None:
        """Read qmp-shell's output until one more reply line than ``seen``."""
        deadline = time.monotonic() + timeout
        while (printed.count(b"(QEMU) {") <= seen
               or b"\n" not in printed[printed.rindex(b"(QEMU) {"):]):
            left = deadline - time.monotonic()
            assert left > 0, f"no reply from qmp-shell: {printed.decode()}"
            ready, _, _ = select.select([proc.stdout], [], [], left)
            chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
            assert chunk or not ready, f"qmp-shell ended: {printed.decode()}"
            printed.extend(chunk)

    for line in text.splitlines():
        wait = WAIT_RE.match(line)
        if wait:
            _wait_job(aux, wait.group(1), tuple(wait.group(2).split("/")))
        elif line.strip() and not line.startswith("#"):
            seen = printed.count(b"(QEMU) {")
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()
            until_reply(seen)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return (bytes(printed) + rest).decode()


def _wait_job(aux: RawMonitor, job: str, until: tuple[str, ...], timeout: float = 30) -> None:
    """Until ``query-jobs`` shows ``job`` in one of ``until`` (or gone, for "null")."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j["id"]: j["status"] for j in aux.execute("query-jobs")["return"]}
        if jobs.get(job) in until or ("null" in until and job not in jobs):
            return
        assert time.monotonic() < deadline, f"job {job} did not become {until}: {jobs}"
        time.sleep(0.01)


async def test_the_printed_plan_runs_unchanged_with_qmp_shell(
        peer: Peer, tmp_path: Path) -> None:
    """The same edits through qmp-shell end in the same graph as through replay."""
    files = chain(tmp_path)
    open_from_headers(peer, files)
    assert peer.aux is not None
    for intent in INTENTS:
        printed = await plan(peer.address, *_fill(intent, names(peer), tmp_path))
        assert printed.code == 0, printed
        out = _qmp_shell(peer.session_socket, printed.out, peer.aux)
        replies = [json.loads(line.split(") ", 1)[1]) for line in out.splitlines()
                   if line.startswith("(QEMU) {")]
        assert replies and all("return" in r for r in replies), out
    assert backing_of(peer, "top") == "spare"
    assert backing_of(peer, "top-1") == "top"
    # the same as replay leaves, compared without auto-generated names
    twin = tmp_path / "twin"
    twin.mkdir()
    twin_files = chain(twin)
    with _daemon(twin) as other:
        open_from_headers(other, twin_files)
        for intent in INTENTS:
            printed = await plan(other.address, *_fill(intent, names(other), twin))
            script = twin / f"{intent[0]}.qmp"
            script.write_text(printed.out)
            args = replay_cmd._parser().parse_args([str(script), "--connect", other.address])
            assert await replay_cmd.run(args, io.StringIO()) == 0
        assert _signature(other, twin) == _signature(peer, tmp_path)


class _daemon:
    def __init__(self, d: Path) -> None:
        self.peer = Peer(d)

    def __enter__(self) -> Peer:
        self.peer.start()
        return self.peer

    def __exit__(self, *exc: object) -> None:
        self.peer.stop()


def _signature(peer: Peer, d: Path) -> Any:
    from engine.graph.snapshot import GraphSnapshot

    snap = GraphSnapshot.from_qmp(peer.ok("x-debug-query-block-graph"),
                                  peer.ok("query-named-block-nodes", {"flat": True}),
                                  peer.ok("query-block-jobs"))
    return json.loads(json.dumps(graph_signature(snap)).replace(str(d), "{dir}"))


# -- every intent: applied, and refused with QEMU's text -----------------------------------
async def test_rebase_onto_and_detach(peer: Peer, tmp_path: Path) -> None:
    open_from_headers(peer, chain(tmp_path))
    n = names(peer)
    r = await plan(peer.address, "--apply", "rebase", n["mid"], "--onto", "spare")
    assert r.code == 0, r
    assert backing_of(peer, n["mid"]) == "spare"
    assert f"#   - node {n['low']} (qcow2" in r.out        # nothing uses it any more
    text = await refused_with_qemus_text(peer.address, "rebase", "spare", "--onto", "top")
    assert text == "Making 'top' a backing child of 'spare' would create a cycle"
    r = await plan(peer.address, "--apply", "rebase", "top", "--detach")
    assert r.code == 0 and backing_of(peer, "top") is None, r


async def test_detach_refused(peer: Peer, tmp_path: Path) -> None:
    open_from_headers(peer, chain(tmp_path))
    text = await refused_with_qemus_text(peer.address, "rebase", "spare-file", "--detach")
    assert text == "Parameter 'options[0].backing' is unexpected"


async def test_snapshot_refused(peer: Peer, tmp_path: Path) -> None:
    open_from_headers(peer, chain(tmp_path))
    n = names(peer)
    text = await refused_with_qemus_text(peer.address, "snapshot", n["mid"], "--file",
                                         str(tmp_path / "s.qcow2"))
    assert text == f"Node '{n['mid']}' is busy: node is used as backing hd of 'top'"


async def test_stream_whole_chain_and_refused(peer: Peer, tmp_path: Path) -> None:
    files = chain(tmp_path)
    open_from_headers(peer, files)
    text = await refused_with_qemus_text(peer.address, "stream", "top", "--base", "top")
    assert text == "Node 'top' is not a backing image of 'top'"
    r = await plan(peer.address, "--apply", "stream", "top")
    assert r.code == 0 and backing_of(peer, "top") is None, r
    assert "backing-filename" not in header(files["top"])


async def test_active_commit_is_completed_and_refused(peer: Peer, tmp_path: Path) -> None:
    open_from_headers(peer, chain(tmp_path))
    n = names(peer)
    r = await plan(peer.address, "--apply", "commit", "top", "--base", n["low"])
    assert r.code == 0, r
    assert "job-complete id=commit-top" in r.out and "(active commit)" in r.out
    text = await refused_with_qemus_text(peer.address, "commit", n["base"], "--base", "top")
    assert text == "'top' is not in this backing file chain"


async def test_read_only_on_and_off_and_refused(peer: Peer, tmp_path: Path) -> None:
    open_from_headers(peer, chain(tmp_path))
    n = names(peer)

    def read_only(node: str) -> bool:
        return next(x["ro"] for x in peer.ok("query-named-block-nodes", {"flat": True})
                    if x["node-name"] == node)

    # an auto-named node, reopened through its named parent
    r = await plan(peer.address, "--apply", "read-only", n["mid"], "off")
    assert r.code == 0 and read_only(n["mid"]) is False, r
    r = await plan(peer.address, "--apply", "read-only", n["mid"], "on")
    assert r.code == 0 and read_only(n["mid"]) is True, r
    peer.ok("nbd-server-start", {"addr": {"type": "unix",
                                          "data": {"path": str(tmp_path / "nbd.sock")}}})
    peer.ok("block-export-add", {"type": "nbd", "id": "e0", "node-name": "spare",
                                 "writable": True})
    text = await refused_with_qemus_text(peer.address, "read-only", "spare", "on")
    assert text == "Read-only block node 'spare' cannot support read-write users"


async def test_delete_and_refused(peer: Peer, tmp_path: Path) -> None:
    open_from_headers(peer, chain(tmp_path))
    n = names(peer)
    text = await refused_with_qemus_text(peer.address, "delete", n["mid"])
    assert text == f"Node '{n['mid']}' is busy: node is used as backing hd of 'top'"
    r = await plan(peer.address, "--apply", "delete", "spare")
    assert r.code == 0 and "#   - node spare (qcow2" in r.out, r


async def test_media_intents_on_a_daemon_without_devices(peer: Peer, tmp_path: Path) -> None:
    """qemu-storage-daemon has no guest devices, nor the commands for their media."""
    for intent, command in ((("change-medium", "cd0", str(tmp_path / "x.iso")),
                             "blockdev-change-medium"), (("eject", "cd0"), "eject")):
        assert await refused_with_qemus_text(peer.address, *intent) == \
            f"The command {command} has not been found"


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                    reason="qemu-system-x86 is installed by scripts/bootstrap.sh")
def test_media_and_a_shared_base_on_a_vm(tmp_path: Path) -> None:
    """qemu-system-x86_64 -M q35 with two virtio disks over one base and a CD-ROM on its
    command line: media changed and ejected; a commit into the base the other disk
    reads is refused, as QEMU refuses it (the other disk does not share write)."""
    from tests.support.differential import QemuSystemPeer

    create(tmp_path / "base.qcow2", MIB)
    for disk in ("d0", "d1"):
        create(tmp_path / f"{disk}.qcow2", MIB, backing=str(tmp_path / "base.qcow2"))
    for iso in ("a.iso", "b.iso"):
        create(tmp_path / iso, MIB, fmt="raw")
    args = ["-blockdev", f"driver=file,filename={tmp_path}/base.qcow2,node-name=base-file",
            "-blockdev", "driver=qcow2,file=base-file,node-name=base,backing=",
            "-blockdev", f"driver=file,filename={tmp_path}/a.iso,node-name=cd-file,read-only=on",
            "-blockdev", "driver=raw,file=cd-file,node-name=cd,read-only=on",
            "-device", "ide-cd,bus=ide.0,drive=cd,id=cd0",
            "-qmp", f"unix:{tmp_path}/plan.sock,server=on,wait=off"]
    for disk in ("d0", "d1"):
        args += ["-blockdev", f"driver=file,filename={tmp_path}/{disk}.qcow2,"
                              f"node-name={disk}-file",
                 "-blockdev", f"driver=qcow2,file={disk}-file,node-name={disk},backing=base",
                 "-device", f"virtio-blk-pci,drive={disk},id=vd-{disk}"]
    vm = QemuSystemPeer(tmp_path, *args)
    address = f"unix:{tmp_path}/plan.sock"
    try:
        def medium() -> str | None:
            block = next(b for b in vm.execute("query-block")["return"] if b["qdev"] == "cd0")
            return block.get("inserted", {}).get("file")

        def refused(*intent: str) -> str:
            return asyncio.run(refused_with_qemus_text(address, *intent))

        r = asyncio.run(plan(address, "--apply", "change-medium", "cd0",
                             str(tmp_path / "b.iso")))
        assert r.code == 0 and medium() == str(tmp_path / "b.iso"), r
        assert refused("remove-medium", "cd0") == "Tray of device 'cd0' is not open"
        r = asyncio.run(plan(address, "--apply", "eject", "cd0"))
        assert r.code == 0 and medium() is None, r
        # step by step: the monitor-owned node 'cd' back in, the tray closed
        assert refused("insert-medium", "cd0", "d0") == "Node 'd0' is already in use"
        for intent in (("insert-medium", "cd0", "cd"), ("close-tray", "cd0")):
            r = asyncio.run(plan(address, "--apply", *intent))
            assert r.code == 0, r
        assert medium() == str(tmp_path / "a.iso")
        assert refused("insert-medium", "cd0", "cd") == "Node 'cd' is already in use"
        assert refused("eject", "vd-d0") == "Device does not have a block device backend"
        virtio = "/machine/peripheral/vd-d0/virtio-backend"
        assert refused("change-medium", virtio, str(tmp_path / "b.iso")) == \
            f"Device '{virtio}' is not removable"
        # the image a disk writes cannot be a CD-ROM's medium
        assert refused("change-medium", "cd0", str(tmp_path / "d0.qcow2")) == \
            'Failed to get shared "write" lock'
        assert refused("commit", "d0", "--base", "base") == (
            "Permission conflict on node 'base': permissions 'write' are both required by "
            "an unnamed block device (uses node 'base' as 'root' child) and unshared by "
            "node 'd1' (uses node 'base' as 'backing' child).")
    finally:
        vm.stop()


# -- the command line itself -------------------------------------------------------------
def test_the_installed_command(peer: Peer, tmp_path: Path) -> None:
    """``blockgraph plan`` as a process: the plan on stdout, exit statuses."""
    open_from_headers(peer, chain(tmp_path))
    exe = str(Path(sys.executable).parent / "blockgraph")
    ok = subprocess.run([exe, "plan", "--connect", peer.address, "stream", "top"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-2:] == [
        "block-stream job-id=stream-top device=top",
        "# wait for job stream-top to become null"], ok.stdout
    assert "#   top (nothing attached): reads the same data" in ok.stdout.splitlines()
    bad = subprocess.run([exe, "plan", "--connect", peer.address, "delete", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        2, "", "Failed to find node with node-name='nope'\n")

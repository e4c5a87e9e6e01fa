"""``--root`` confinement: no filename option can reach a file outside the root.

Each filename a QMP client can give — ``file.filename`` of ``blockdev-add``, a
backing given inline, a backing file named by an image header (resolved when the
image is opened: plain, ``json:`` pseudo-names, names written by ``block-stream``
/ ``block-commit`` ``backing-file``), ``blockdev-create`` targets and
``blockdev-snapshot-sync``'s ``snapshot-file`` — is tried with the three ways out:
``..`` components, symlinks (to a file and to a directory) and absolute paths.

Every attempt must be refused with QEMU's "Permission denied" text, and — checked
by recording every ``open``/``os.open``/``os.stat`` the engine makes while it runs
in this process — nothing outside the root is opened, created or even looked at
(an error that differed between "exists" and "does not exist" would leak that).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.formats import open_image
from engine.server.inprocess import InProcessServer
from tests.server.support import RawClient
from tests.support.qemu import create, qemu_io


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/ (images, a sub dir, symlinks out) and outside/ (a secret and a dir)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    create(outside / "secret.qcow2", "1M")
    create(outside / "secret.raw", "1M", fmt="raw")
    qemu_io(outside / "secret.raw", "write -P 0x5e 0 1M", fmt="raw")
    create(root / "in.qcow2", "1M")
    create(root / "base.raw", "1M", fmt="raw")
    (root / "link.qcow2").symlink_to(outside / "secret.qcow2")
    (root / "link.raw").symlink_to(outside / "secret.raw")
    (root / "outdir").symlink_to(outside)
    return {"root": root, "outside": outside}


class OpenRecorder:
    """Records paths the engine opens or stats (only those under ``watch``)."""

    def __init__(self, watch: Path) -> None:
        self.watch = str(watch.resolve())
        self.seen: list[tuple[str, str]] = []

    def _note(self, what: str, path: Any) -> None:
        if isinstance(path, int):
            return
        with contextlib.suppress(Exception):
            real = os.path.realpath(os.fsdecode(path))
            if real == self.watch or real.startswith(self.watch + os.sep):
                self.seen.append((what, real))

    @contextlib.contextmanager
    def active(self) -> Iterator[OpenRecorder]:
        real_open, real_os_open, real_stat = builtins.open, os.open, os.stat

        def rec_open(file: Any, *a: Any, **k: Any) -> Any:
            self._note("open", file)
            return real_open(file, *a, **k)

        def rec_os_open(path: Any, *a: Any, **k: Any) -> Any:
            self._note("os.open", path)
            return real_os_open(path, *a, **k)

        def rec_stat(path: Any, *a: Any, **k: Any) -> Any:
            self._note("stat", path)
            return real_stat(path, *a, **k)

        builtins.open, os.open, os.stat = rec_open, rec_os_open, rec_stat  # type: ignore[assignment]
        try:
            yield self
        finally:
            builtins.open, os.open, os.stat = real_open, real_os_open, real_stat  # type: ignore[assignment]


@pytest.fixture
def qmp(tree: dict[str, Path]) -> Iterator[tuple[RawClient, OpenRecorder]]:
    recorder = OpenRecorder(tree["outside"])
    with recorder.active():
        server = InProcessServer(root=tree["root"])
        client = RawClient(server.connect()).negotiate()
        try:
            yield client, recorder
        finally:
            client.close()
            server.close()


def escapes(tree: dict[str, Path], name: str) -> dict[str, str]:
    """Ways to name outside/<name> from a command (all resolve outside the root)."""
    root, outside = tree["root"], tree["outside"]
    return {
        "dotdot": f"{root}/sub/../../outside/{name}",
        "symlink-dir": f"{root}/outdir/{name}",
        "absolute": f"{outside}/{name}",
    }


def _refused(reply: dict[str, Any], what: str) -> None:
    assert "error" in reply, f"{what}: accepted: {reply}"
    assert "Permission denied" in reply["error"]["desc"], f"{what}: {reply}"


def _outside_unchanged(tree: dict[str, Path]) -> None:
    assert sorted(p.name for p in tree["outside"].iterdir()) == ["secret.qcow2", "secret.raw"]


def _qcow2(name: str, filename: str, **extra: Any) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": filename}, **extra}


@pytest.mark.parametrize("style", ["dotdot", "symlink-dir", "absolute", "symlink-file"])
def test_blockdev_add_filename(tree: dict[str, Path], qmp: Any, style: str) -> None:
    client, recorder = qmp
    names = escapes(tree, "secret.qcow2") | {"symlink-file": f"{tree['root']}/link.qcow2"}
    _refused(client.cmd("blockdev-add", _qcow2("n", names[style])), style)
    _refused(client.cmd("blockdev-add", {"driver": "file", "node-name": "f",
                                         "filename": names[style]}), style)
    assert recorder.seen == []


@pytest.mark.parametrize("style", ["dotdot", "symlink-dir", "absolute", "symlink-file"])
def test_inline_backing(tree: dict[str, Path], qmp: Any, style: str) -> None:
    client, recorder = qmp
    names = escapes(tree, "secret.raw") | {"symlink-file": f"{tree['root']}/link.raw"}
    reply = client.cmd("blockdev-add", _qcow2(
        "n", str(tree["root"] / "in.qcow2"),
        backing={"driver": "raw", "file": {"driver": "file", "filename": names[style]}}))
    _refused(reply, style)
    assert recorder.seen == []


def _header_backing(image: Path, backing: str, fmt: str | None = "raw") -> None:
    """Write a backing name into a header without opening it (like qemu-img rebase -u,
    which in 7.2 insists on a format; without one the engine must probe the file)."""
    img = open_image(image, writable=True)
    try:
        img.set_backing(backing, fmt)
    finally:
        img.close()


@pytest.mark.parametrize("style,fmt", [
    ("relative", "raw"), ("relative", None), ("absolute", "raw"), ("symlink-file", "raw"),
    ("symlink-dir", None), ("json", "raw"), ("dotdot-abs", None)])
def test_backing_name_in_an_image_header(tree: dict[str, Path], qmp: Any, style: str,
                                         fmt: str | None) -> None:
    """The header's backing string is resolved when the image is opened."""
    client, recorder = qmp
    root, outside = tree["root"], tree["outside"]
    backing = {
        "relative": "../outside/secret.raw",
        "absolute": str(outside / "secret.raw"),
        "symlink-file": "link.raw",
        "symlink-dir": "outdir/secret.raw",
        "json": json.dumps({"driver": "raw", "file": {"driver": "file",
                                                      "filename": str(outside / "secret.raw")}}),
        "dotdot-abs": f"{root}/sub/../../outside/secret.raw",
    }[style]
    if style == "json":
        backing = "json:" + backing
    image = root / f"hdr-{style}.qcow2"
    create(image, "1M")
    _header_backing(image, backing, fmt)
    reply = client.cmd("blockdev-add", _qcow2("n", str(image)))
    _refused(reply, f"{style}: {backing}")
    assert recorder.seen == [], recorder.seen


@pytest.mark.parametrize("style", ["dotdot", "symlink-dir", "absolute"])
def test_blockdev_create_target(tree: dict[str, Path], qmp: Any, style: str) -> None:
    client, recorder = qmp
    target = escapes(tree, "new.qcow2")[style]
    reply = client.cmd("blockdev-create", {"job-id": "c", "options": {
        "driver": "file", "filename": target, "size": 1 << 20}})
    if "return" in reply:   # QEMU reports open failures of a create job in the job
        job = _wait_concluded(client, "c")
        assert "Permission denied" in job.get("error", ""), job
    else:
        _refused(reply, style)
    _outside_unchanged(tree)
    assert recorder.seen == []


def _wait_concluded(client: RawClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in client.cmd("query-jobs")["return"]}
        if jobs.get(job_id, {}).get("status") == "concluded":
            return jobs[job_id]
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not conclude")


@pytest.mark.parametrize("style", ["dotdot", "symlink-dir", "absolute"])
def test_snapshot_file(tree: dict[str, Path], qmp: Any, style: str) -> None:
    client, recorder = qmp
    assert "return" in client.cmd("blockdev-add", _qcow2("top", str(tree["root"] /
                                                                  "in.qcow2")))
    target = escapes(tree, "snap.qcow2")[style]
    reply = client.cmd("blockdev-snapshot-sync", {"node-name": "top", "snapshot-file": target,
                                                  "snapshot-node-name": "s",
                                                  "format": "qcow2"})
    _refused(reply, style)
    reply = client.cmd("transaction", {"actions": [{"type": "blockdev-snapshot-sync", "data": {
        "node-name": "top", "snapshot-file": target, "snapshot-node-name": "s2"}}]})
    _refused(reply, f"transaction {style}")
    _outside_unchanged(tree)
    assert recorder.seen == []


@pytest.mark.parametrize("job", ["stream", "commit"])
@pytest.mark.parametrize("style", ["relative", "absolute", "symlink-file"])
def test_backing_file_strings_written_by_jobs(tree: dict[str, Path], qmp: Any, job: str,
                                              style: str) -> None:
    """A job may write any backing-file string into a header (as QEMU does); opening the
    image afterwards resolves it — and is refused when it leads outside."""
    client, recorder = qmp
    root = tree["root"]
    create(root / "mid.qcow2", "1M", backing="base.raw", backing_fmt="raw")
    create(root / "top.qcow2", "1M", backing="mid.qcow2", backing_fmt="qcow2")
    name = {"relative": "../outside/secret.raw",
            "absolute": str(tree["outside"] / "secret.raw"),
            "symlink-file": "link.raw"}[style]
    assert "return" in client.cmd("blockdev-add", _qcow2("top", str(root / "top.qcow2")))
    nodes = client.cmd("query-named-block-nodes", {"flat": True})["return"]
    mid = next(n["node-name"] for n in nodes if n["file"].endswith("mid.qcow2"))
    base = next(n["node-name"] for n in nodes
                if n["drv"] == "raw" and n["file"].endswith("base.raw"))
    if job == "stream":
        args = {"job-id": "j", "device": "top", "base-node": base, "backing-file": name}
        reply = client.cmd("block-stream", args)
    else:
        args = {"job-id": "j", "device": "top", "top-node": mid, "base-node": base,
                "backing-file": name}
        reply = client.cmd("block-commit", args)
    assert "return" in reply, reply
    deadline = time.monotonic() + 10
    while client.cmd("query-jobs")["return"]:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.01)
    assert "return" in client.cmd("blockdev-del", {"node-name": "top"})
    reply = client.cmd("blockdev-add", _qcow2("again", str(root / "top.qcow2")))
    _refused(reply, f"{job} wrote {name}")
    assert recorder.seen == [], recorder.seen


def test_backing_given_as_a_json_filename_string(tree: dict[str, Path], qmp: Any) -> None:
    """``backing`` as a string names a node (QEMU does not parse ``json:`` there): the
    pseudo-filename is refused as an unknown reference and no file is touched."""
    client, recorder = qmp
    pseudo = "json:" + json.dumps({"driver": "raw", "file": {
        "driver": "file", "filename": str(tree["outside"] / "secret.raw")}})
    reply = client.cmd("blockdev-add", _qcow2("n", str(tree["root"] / "in.qcow2"),
                                              backing=pseudo))
    assert "error" in reply, reply
    assert pseudo in reply["error"]["desc"], reply
    reply = client.cmd("blockdev-add", {"driver": "raw", "node-name": "r", "file": pseudo})
    assert "error" in reply, reply
    assert recorder.seen == []
    _outside_unchanged(tree)

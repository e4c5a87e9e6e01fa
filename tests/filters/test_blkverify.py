"""``blkverify`` against QEMU 7.2: its two children, graph, filenames and refusals
(qemu-storage-daemon), guest I/O through it, and the line QEMU prints when the
children disagree (qemu-io). Where QEMU quits, ``blockgraph serve`` and ``blockgraph
qemu`` quit alike; the engine inside the desktop application fails the request."""

from __future__ import annotations

import contextlib
import errno
import json
from pathlib import Path
from typing import Any

import pytest

from engine.qmp.engine import Engine
from tests.server.support import ServeProcess
from tests.support import qemu
from tests.support.differential import Step, run_scenario
from tests.support.guest import Reads, guest_write
from tests.support.peer import RawMonitor

pytestmark = pytest.mark.qemu


def _images(d: Path) -> None:
    for name in ("a", "b"):
        qemu.qemu_img("create", "-f", "raw", d / f"{name}.raw", "1M")
        qemu.create(d / f"{name}.qcow2", "1M")


def _file(name: str) -> dict[str, Any]:
    return {"driver": "file", "filename": "{dir}/" + name}


def verify(name: str, expect: str | None = None, **children: Any) -> Step:
    return Step("blockdev-add", {"driver": "blkverify", "node-name": name, **children},
                expect=expect)


def test_blkverify_graph_filenames_and_guest_io(tmp_path: Path) -> None:
    reads = Reads()
    run_scenario(tmp_path, _images, [
        verify("v0", "ok", raw=_file("a.raw"),
               test={"driver": "qcow2", "file": _file("a.qcow2")}),
        Step("blockdev-add", {"driver": "file", "node-name": "braw", **{
            "filename": "{dir}/b.raw"}}, expect="ok"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "bq",
                              "file": _file("b.qcow2")}, expect="ok"),
        verify("v1", "ok", raw="braw", test="bq"),
        verify("v2", "error", raw="nothing", test="bq"),
        verify("v2", "error", raw=_file("a.raw")),
        verify("v2", "error", test="bq"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("query-named-block-nodes", {}, compare_return=True),
        Step("query-version", None, compare_graph=False,
             after=guest_write("v0", 65536, 0x5a, 131072)),
        Step("query-version", None, compare_graph=False, after=reads.hook("v0", 0, 262144)),
        Step("blockdev-del", {"node-name": "bq"}, expect="error"),
        Step("blockdev-del", {"node-name": "v1"}, expect="ok"),
        Step("blockdev-del", {"node-name": "bq"}, expect="ok"),
    ])
    assert reads.agree()[65536:65536 + 131072] == b"\x5a" * 131072


def test_mismatch_says_what_qemu_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    _images(tmp_path)
    qemu.qemu_io(tmp_path / "a.raw", "write -P 0x11 0 64k", fmt="raw")
    qemu.qemu_io(tmp_path / "a.qcow2", "write -P 0x11 0 64k")
    qemu.qemu_io(tmp_path / "a.qcow2", "write -P 0x22 1000 24")
    options = {"driver": "blkverify",
               "raw": {"driver": "file", "filename": str(tmp_path / "a.raw")},
               "test": {"driver": "qcow2", "file": {"driver": "file",
                                                    "filename": str(tmp_path / "a.qcow2")}}}
    ran = qemu.qemu_io("json:" + json.dumps(options), "read 0 4k", fmt="blkverify",
                       check=False)
    assert ran.returncode == 1
    with Engine() as engine:
        engine.execute("blockdev-add", {"node-name": "v", **options})
        capsys.readouterr()
        node = engine.graph.find("v")
        with pytest.raises(OSError) as failed:
            node.io.readinto(0, memoryview(bytearray(4096)))
        assert failed.value.errno == errno.EIO
        printed = capsys.readouterr().err.splitlines()
        assert printed == [line for line in ran.stderr.splitlines()
                           if line.startswith("blkverify:")]
        assert printed == ["blkverify: read offset=0 bytes=4096 contents mismatch at "
                           "offset 1000"]
        # what agrees reads as it is
        agree = bytearray(4096)
        node.io.readinto(8192, memoryview(agree))
        assert agree == b"\x11" * 4096


def _mismatching(d: Path) -> None:
    """A raw file and a qcow2 image of 64 KiB that differ at byte 1000, and a target."""
    qemu.qemu_img("create", "-f", "raw", d / "a.raw", "64k")
    qemu.create(d / "a.qcow2", "64k")
    qemu.create(d / "t.qcow2", "64k")
    qemu.qemu_io(d / "a.raw", "write -P 0x11 0 64k", fmt="raw")
    qemu.qemu_io(d / "a.qcow2", "write -P 0x11 0 64k", "write -P 0x22 1000 24")


def _mirror_through_blkverify(monitor: Any, d: Path) -> None:
    """Open the images and mirror the blkverify node: the job's first read mismatches."""
    for command, args in [
        ("blockdev-add", {"driver": "blkverify", "node-name": "v",
                          "raw": {"driver": "file", "filename": f"{d}/a.raw"},
                          "test": {"driver": "qcow2", "file": {
                              "driver": "file", "filename": f"{d}/a.qcow2"}}}),
        ("blockdev-add", {"driver": "qcow2", "node-name": "t",
                          "file": {"driver": "file", "filename": f"{d}/t.qcow2"}}),
    ]:
        assert "return" in monitor.execute(command, args)
    with contextlib.suppress(EOFError, OSError):     # the reply may not come: it quits
        monitor.execute("blockdev-mirror", {"job-id": "m", "device": "v", "target": "t",
                                            "sync": "full"})


def test_a_mismatch_ends_the_server_as_it_ends_qemu_storage_daemon(tmp_path: Path) -> None:
    """Serving QMP as qemu-storage-daemon does, ``blockgraph serve`` ends as it ends on a
    blkverify mismatch: the same line on standard error, exit status 1, the monitor's
    connection gone. (Inside the desktop application the request fails with EIO
    instead, as the test above shows: the application does not quit.)"""
    lines = {}
    codes = {}
    qsd_dir, serve_dir = tmp_path / "qsd", tmp_path / "serve"
    for d in (qsd_dir, serve_dir):
        d.mkdir()
        _mismatching(d)
    daemon = qemu.QemuStorageDaemon(qsd_dir).start()
    try:
        _mirror_through_blkverify(_LegacyMonitor(daemon), qsd_dir)
        assert daemon.proc is not None
        codes["qsd"] = daemon.proc.wait(20)
        assert daemon.proc.stdout is not None
        lines["qsd"] = daemon.proc.stdout.read().decode().splitlines()
    finally:
        daemon.stop()
    served = ServeProcess(serve_dir).start()
    try:
        monitor = RawMonitor(served.socket_path)
        _mirror_through_blkverify(monitor, serve_dir)
        codes["serve"] = served.wait()
        lines["serve"] = served.stderr.splitlines()
        with pytest.raises((EOFError, OSError)):
            monitor.execute("query-version")
        monitor.close()
    finally:
        served.stop()
    assert codes == {"qsd": 1, "serve": 1}
    ours = [line for line in lines["serve"] if line.startswith("blkverify:")]
    assert ours == [line for line in lines["qsd"] if line.startswith("blkverify:")]
    assert ours == ["blkverify: read offset=0 bytes=65536 contents mismatch at offset 1000"]


class _LegacyMonitor:
    """qemu-storage-daemon's monitor with :class:`RawMonitor`'s face and errors."""

    def __init__(self, daemon: qemu.QemuStorageDaemon) -> None:
        self.daemon = daemon

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        try:
            return self.daemon.execute(command, arguments)
        except Exception as exc:         # the connection went with the process
            raise EOFError(str(exc)) from exc

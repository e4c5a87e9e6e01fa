"""``blkverify`` against QEMU 7.2: its two children, graph, filenames and refusals
(qemu-storage-daemon), guest I/O through it, and the line QEMU prints when the
children disagree (qemu-io) — where QEMU quits, the engine fails the request."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from engine.qmp.engine import Engine
from tests.support import qemu
from tests.support.differential import Step, run_scenario
from tests.support.guest import Reads, guest_write

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

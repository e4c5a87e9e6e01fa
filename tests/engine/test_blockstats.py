"""``query-blockstats`` against qemu-system-x86_64 7.2: the same command line, the same
qemu-io writes through the human monitor, and the replies compared whole, in QEMU's
member order — per device (skipping into ``parent`` and ``backing``) and per node
with ``query-nodes``. The counters compared are deterministic ones: the backend's
accounting (qemu-io's plain ``write`` is not accounted, in QEMU either) and every
node's highest write, guest and host offsets both; the time figures are zero where
nothing was accounted."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from engine.launcher.opened import open_command_line
from tests.support import qemu

pytestmark = pytest.mark.qemu

BASE = ["-M", "q35", "-nodefaults", "-display", "none", "-S"]


def _images(d: Path) -> None:
    for name in ("base.raw", "mid.qcow2", "top.qcow2", "other.raw"):
        (d / name).unlink(missing_ok=True)
    qemu.qemu_img("create", "-f", "raw", d / "base.raw", "4M")
    qemu.qemu_img("create", "-f", "raw", d / "other.raw", "1M")
    qemu.create(d / "mid.qcow2", "4M", backing=str(d / "base.raw"), backing_fmt="raw")
    qemu.create(d / "top.qcow2", "4M", backing=str(d / "mid.qcow2"), backing_fmt="qcow2")


def _args(d: Path) -> list[str]:
    return ["-drive", f"if=none,id=drive0,file={d}/top.qcow2,format=qcow2,node-name=top,"
                      "backing.node-name=mid",
            "-device", "virtio-blk-pci,id=vd0,drive=drive0",
            "-blockdev", f"driver=file,filename={d}/other.raw,node-name=other-file",
            "-blockdev", "driver=raw,file=other-file,node-name=other,offset=512"]


def _hmp(line: str) -> tuple[str, dict[str, Any]]:
    return "human-monitor-command", {"command-line": line}


COMMANDS = [
    ("query-blockstats", {}),
    ("query-blockstats", {"query-nodes": True}),
    _hmp('qemu-io drive0 "write -P 1 64k 64k"'),
    _hmp('qemu-io drive0 "write -z 1M 64k"'),
    _hmp('qemu-io drive0 "read 0 4k"'),
    _hmp('qemu-io other "write -P 2 0 1000"'),
    ("query-blockstats", {}),
    ("query-blockstats", {"query-nodes": True}),
    ("query-blockstats", {"query-nodes": False}),
    # accounted: two writes, a read with its check, invalid and failed requests, a
    # zero write (not accounted), flushes; on a node-name the backend is a throwaway
    _hmp('qemu-io drive0 "aio_write -P 3 128k 4k 4k"'),
    _hmp('qemu-io drive0 "aio_write -q 3M 512"'),
    # QEMU may start an aio_read before an aio_write in flight has ended: the flush
    # (qemu-io drains every request) keeps the reads below after the writes
    _hmp('qemu-io drive0 "aio_flush"'),
    _hmp('qemu-io drive0 "aio_read -P 3 128k 8k"'),
    _hmp('qemu-io drive0 "aio_read -P 4 128k 512"'),
    _hmp('qemu-io drive0 "aio_write -i 0 512"'),
    _hmp('qemu-io drive0 "aio_read -i 0 512"'),
    _hmp('qemu-io drive0 "aio_write 0 4k x"'),
    _hmp('qemu-io drive0 "aio_write 4M 512"'),
    _hmp('qemu-io drive0 "aio_read 4M 512"'),
    _hmp('qemu-io drive0 "aio_write -z 2M 64k"'),
    _hmp('qemu-io drive0 "aio_flush"'),   # its report line before the errors below
    _hmp('qemu-io drive0 "aio_write -u 0 4k"'),
    _hmp('qemu-io drive0 "aio_read 0"'),
    _hmp('qemu-io drive0 "aio_read -q 0"'),
    _hmp('qemu-io drive0 "aio_flush"'),
    _hmp('qemu-io other "aio_write 0 512"'),
    ("query-blockstats", {}),
    ("query-blockstats", {"query-nodes": True}),
]

#: figures of the host's clock, left out of the comparison
TIMES = re.compile(r'"(idle_time_ns|\w+_total_time_ns)": \d+')


def _qemu_replies(args: list[str]) -> tuple[list[str], list[str]]:
    script = [json.dumps({"execute": "qmp_capabilities"})]
    script += [json.dumps({"execute": c, "arguments": a}) for c, a in COMMANDS]
    script.append(json.dumps({"execute": "quit"}))
    proc = subprocess.run(["qemu-system-x86_64", *BASE, *args, "-qmp", "stdio"],
                          input="\n".join(script) + "\n", capture_output=True, text=True,
                          timeout=60, check=True)
    replies = [json.loads(line) for line in proc.stdout.splitlines()
               if line.startswith('{"return"') or line.startswith('{"error"')]
    printed = [line for line in proc.stdout.splitlines() if not line.startswith("{")]
    return [json.dumps(r["return"]) for r in replies[1:-1]], printed


def _engine_replies(args: list[str]) -> tuple[list[str], list[str]]:
    opened = open_command_line(shlex.join(["qemu-system-x86_64", *BASE, *args]))
    replies = []
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            for command, arguments in COMMANDS:
                replies.append(json.dumps(opened.machine.execute(command, arguments)))
    finally:
        opened.machine.close()
    return replies, out.getvalue().splitlines()


def _comparable(text: str, d: Path) -> str:
    text = TIMES.sub(r'"\1": "host"', text)
    return re.sub(r"#block\d+", "#block", text.replace(str(d), "{dir}"))


def _without_rates(printed: list[str]) -> list[str]:
    """qemu-io's report lines without the one that carries the duration."""
    return [line for line in printed if "ops/sec" not in line]


def test_blockstats_match_qemu_per_device_and_per_node(tmp_path: Path) -> None:
    _images(tmp_path)
    theirs, their_lines = _qemu_replies(_args(tmp_path))
    _images(tmp_path)
    ours, our_lines = _engine_replies(_args(tmp_path))
    assert [_comparable(r, tmp_path) for r in ours] == \
        [_comparable(r, tmp_path) for r in theirs]
    assert _without_rates(our_lines) == _without_rates(their_lines)
    after = json.loads(ours[6])[0]
    # what was compared did move: the guest's highest write, and the host file's
    assert after["stats"]["wr_highest_offset"] == 1024 * 1024 + 64 * 1024
    assert after["parent"]["stats"]["wr_highest_offset"] > 0
    assert after["backing"]["node-name"] == "mid"
    assert after["stats"]["wr_operations"] == 0 and after["stats"]["account_failed"]
    counted = json.loads(ours[-2])[0]["stats"]
    assert (counted["wr_operations"], counted["wr_bytes"], counted["rd_operations"],
            counted["flush_operations"], counted["failed_wr_operations"],
            counted["invalid_wr_operations"], counted["invalid_rd_operations"]) == \
        (2, 8192 + 512, 2, 3, 1, 2, 1)
    assert "idle_time_ns" in counted

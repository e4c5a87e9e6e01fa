"""``blkdebug`` on a QEMU command line and through the human monitor: the graph that
``-drive file=blkdebug::IMAGE`` builds, compared with qemu-system-x86_64 7.2's, what
``qemu-io``'s blkdebug commands print, and breakpoints that really hold a job's
request until ``remove_break`` lets it go."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import threading
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from engine.launcher.opened import open_command_line
from tests.support import qemu

pytestmark = pytest.mark.qemu

BASE = ["-M", "none", "-nodefaults", "-display", "none"]


def _chain(d: Path) -> None:
    qemu.qemu_img("create", "-f", "raw", d / "base.raw", "4M")
    qemu.qemu_io(d / "base.raw", "write -P 0x01 0 4M", fmt="raw")
    qemu.create(d / "top.qcow2", "4M", backing=str(d / "base.raw"), backing_fmt="raw")
    qemu.qemu_img("create", "-f", "qcow2", d / "other.qcow2", "1M")


def _drives(d: Path) -> list[str]:
    return ["-drive", f"if=none,id=drive0,file=blkdebug::{d}/top.qcow2,format=qcow2,"
                      "cache=writeback,aio=threads,backing.node-name=base",
            "-drive", f"if=none,id=drive1,file={d}/other.qcow2,format=qcow2"]


def _qemu_session(args: list[str], commands: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[list[Any], list[str]]:
    """Run ``commands`` on qemu-system-x86_64 over QMP on stdio: (replies, other lines)."""
    script = [json.dumps({"execute": "qmp_capabilities"})]
    script += [json.dumps({"execute": c, "arguments": a}) for c, a in commands]
    script.append(json.dumps({"execute": "quit"}))
    proc = subprocess.run(["qemu-system-x86_64", *BASE, *args, "-qmp", "stdio"],
                          input="\n".join(script) + "\n", capture_output=True, text=True,
                          timeout=60)
    replies: list[Any] = []
    printed: list[str] = []
    for line in proc.stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            printed.append(line)
            continue
        if "return" in message or "error" in message:
            replies.append(message)
    return replies[1:-1], printed


def _engine_session(args: list[str], commands: list[tuple[str, dict[str, Any]]]
                    ) -> tuple[list[Any], list[str]]:
    opened = open_command_line(shlex.join(["qemu-system-x86_64", *BASE, *args]))
    machine = opened.machine
    replies: list[Any] = []
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            for command, arguments in commands:
                try:
                    replies.append({"return": machine.execute(command, arguments)})
                except Exception as exc:
                    replies.append({"error": {"class": getattr(exc, "error_class", "?"),
                                              "desc": str(exc)}})
    finally:
        machine.close()
    return replies, out.getvalue().splitlines()


def _hmp(line: str) -> tuple[str, dict[str, Any]]:
    return "human-monitor-command", {"command-line": line}


def _nodes(replies: list[Any], d: Path) -> Any:
    text = json.dumps(replies).replace(str(d), "{dir}")
    return json.loads(text.replace('"actual-size"', '"host-figure"'))


def test_drive_graph_and_blkdebug_commands_match_qemu(tmp_path: Path) -> None:
    _chain(tmp_path)
    commands = [
        ("query-named-block-nodes", {"flat": True}),
        _hmp('qemu-io drive0 "break nope t"'),
        _hmp('qemu-io drive0 "remove_break t"'),
        _hmp('qemu-io drive0 "resume t"'),
        _hmp('qemu-io drive0 "break read_aio"'),
        _hmp('qemu-io drive1 "break read_aio x"'),
        _hmp('qemu-io drive0 "break read_aio bp"'),
        _hmp('qemu-io drive0 "remove_break bp"'),
        _hmp('qemu-io drive0 "remove_break bp"'),
        _hmp('qemu-io drive0 "read -P 1 0 64k"'),
    ]
    qemu_replies, qemu_printed = _qemu_session(_drives(tmp_path), commands)
    ours, printed = _engine_session(_drives(tmp_path), commands)
    names = ("node-name", "drv", "file", "ro", "backing_file", "backing_file_depth")

    def view(replies: list[Any]) -> Any:
        nodes = [{k: n.get(k) for k in names} for n in replies[0]["return"]]
        for n in nodes:
            if n["node-name"].startswith("#block"):
                n["node-name"] = "#block?"
        return _nodes([nodes, *replies[1:]], tmp_path)

    assert view(ours) == view(qemu_replies)
    # the read's report line carries its duration
    assert [p for p in printed if "ops/sec" not in p] == \
        [p for p in qemu_printed if "ops/sec" not in p]


def test_breakpoint_holds_a_stream_until_removed(tmp_path: Path) -> None:
    """iotests' pause_drive: a break on write_aio suspends the job's first write to the
    image; the monitor keeps answering; remove_break lets the job finish."""
    _chain(tmp_path)
    opened = open_command_line(shlex.join(["qemu-system-x86_64", *BASE,
                                           *_drives(tmp_path)]))
    machine = opened.machine
    engine = machine.engine
    done = threading.Event()
    engine.add_listener(lambda m: done.set() if m["event"] == "BLOCK_JOB_COMPLETED" else None)
    try:
        with redirect_stdout(io.StringIO()):
            machine.execute(*_hmp('qemu-io drive0 "break write_aio bp_drive0"'))
            machine.execute("block-stream", {"device": "drive0"})
            machine.execute(*_hmp('qemu-io drive0 "wait_break bp_drive0"'))
            held = machine.execute("query-block-jobs")[0]
            assert (held["busy"], held["offset"], held["status"]) == (True, 0, "running")
            assert machine.execute("query-block-jobs")[0]["offset"] == 0
            machine.execute(*_hmp('qemu-io drive0 "remove_break bp_drive0"'))
        assert done.wait(30)
        assert machine.execute("query-block-jobs") == []
    finally:
        machine.close()
    assert qemu.compare(tmp_path / "top.qcow2", tmp_path / "base.raw", fmt_b="raw")

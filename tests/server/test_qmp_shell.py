"""qemu.qmp's ``qmp-shell`` drives ``blockgraph serve`` like a QEMU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.support import ServeProcess
from tests.support.qemu import create

pytestmark = pytest.mark.qemu

QMP_SHELL = str(Path(sys.executable).parent / "qmp-shell")


def test_qmp_shell_session(tmp_path: Path) -> None:
    img = create(tmp_path / "disk.qcow2", "1M")
    file_ref = json.dumps({"driver": "file", "node-name": "disk-file", "filename": str(img)},
                          separators=(",", ":"))
    reopen = json.dumps([{"driver": "qcow2", "node-name": "disk", "file": "disk-file",
                          "read-only": True}], separators=(",", ":"))
    script = "\n".join([
        "query-named-block-nodes",
        f"blockdev-add driver=qcow2 node-name=disk file={file_ref}",
        f"blockdev-reopen options={reopen}",
        "query-named-block-nodes flat=true",
    ]) + "\n"
    with ServeProcess(tmp_path) as srv:
        proc = subprocess.run([QMP_SHELL, srv.socket_path], input=script, text=True,
                              capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line.split(") ", 1)[1]) for line in proc.stdout.splitlines()
               if line.startswith("(QEMU) {")]
    assert replies[:3] == [{"return": []}, {"return": {}}, {"return": {}}], proc.stdout
    nodes = {n["node-name"]: n for n in replies[3]["return"]}
    assert set(nodes) == {"disk", "disk-file"}
    assert nodes["disk"]["ro"] is True and nodes["disk"]["file"] == str(img)
    assert "Connected to QEMU 7.2" in proc.stdout

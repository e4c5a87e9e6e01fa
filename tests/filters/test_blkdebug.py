"""``blkdebug`` against qemu-storage-daemon 7.2: its options and refusals, the graph and
filenames it makes, and the errors it injects into guest I/O and block jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import qemu
from tests.support.differential import Step, run_scenario

pytestmark = pytest.mark.qemu


def _images(d: Path) -> None:
    qemu.qemu_img("create", "-f", "raw", d / "base.raw", "2M")
    for name in ("top", "top1", "top2"):
        qemu.qemu_img("create", "-f", "qcow2", d / f"{name}.qcow2", "2M")
        qemu.qemu_io(d / f"{name}.qcow2", "write -P 0x22 0 512k")
    (d / "rules.conf").write_text(
        '[inject-error]\nevent = "read_aio"\nerrno = "28"\nsector = "8"\n\n'
        '[set-state]\nstate = "1"\nevent = "read_aio"\nnew_state = "2"\n')
    (d / "bad.conf").write_text('[inject-error]\nevent = "no_such_event"\n')


def blkdebug(name: str, image: Any, expect: str | None = None, **opts: Any) -> Step:
    return Step("blockdev-add", {"driver": "blkdebug", "node-name": name, "image": image,
                                 **opts}, expect=expect)


FILE = {"driver": "file", "filename": "{dir}/top.qcow2"}
BASE = {"driver": "file", "filename": "{dir}/base.raw"}
FILE1 = {"driver": "file", "filename": "{dir}/top1.qcow2"}
FILE2 = {"driver": "file", "filename": "{dir}/top2.qcow2"}


def test_blkdebug_options_graph_and_filenames(tmp_path: Path) -> None:
    run_scenario(tmp_path, _images, [
        blkdebug("d0", FILE, expect="ok"),
        blkdebug("d1", FILE1, config="{dir}/rules.conf", expect="ok"),
        blkdebug("d2", FILE2, expect="ok", **{"inject-error": [
            {"event": "read_aio", "sector": 1024, "once": True, "errno": 5},
            {"event": "write_aio", "iotype": "write", "state": 2}],
            "set-state": [{"event": "read_aio", "new_state": 2}]}),
        blkdebug("d3", BASE, expect="ok", align=4096, **{"max-transfer": 65536}),
        blkdebug("d4", FILE, expect="error", align=3000),
        blkdebug("d4", FILE, expect="error", align=512, **{"max-transfer": 1000}),
        blkdebug("d4", FILE, expect="error", align=4096, **{"opt-discard": 512}),
        blkdebug("d4", FILE, expect="error", **{"opt-write-zero": 4096,
                                                 "max-write-zero": 6144}),
        blkdebug("d4", FILE, expect="error", config="{dir}/missing.conf"),
        blkdebug("d4", FILE, expect="error", config="{dir}/bad.conf"),
        blkdebug("d4", FILE, expect="error",
                 **{"inject-error": [{"event": "nope"}]}),
        blkdebug("d4", FILE, expect="error",
                 **{"inject-error": [{"event": "read_aio", "iotype": "sideways"}]}),
        blkdebug("d4", FILE, expect="error", **{"set-state": [{"event": "read_aio"}]}),
        blkdebug("d4", "nothing", expect="error"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q0", "file": "d0"},
             expect="ok"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q1", "file": "d1"},
             expect="ok"),
        Step("blockdev-add", {"driver": "qcow2", "node-name": "q2", "file": "d2"},
             expect="ok"),
        Step("blockdev-add", {"driver": "raw", "node-name": "r3", "file": "d3"},
             expect="ok"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("query-named-block-nodes", {}, compare_return=True),
        Step("blockdev-del", {"node-name": "d0"}, expect="error"),
        Step("blockdev-del", {"node-name": "q0"}, expect="ok"),
        Step("blockdev-del", {"node-name": "d0"}, expect="ok"),
    ])

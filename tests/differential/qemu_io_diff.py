"""Run the same ``qemu-io`` commands on the engine and on QEMU 7.2, then compare the
images they leave.

qemu-storage-daemon has no human monitor, so QEMU's side is ``qemu-system-x86_64``
(q35, no defaults, paused: the same block layer and drivers) answering
``human-monitor-command``; the engine's side is the engine with the monitor commands a
VM's monitor adds (:class:`engine.launcher.machine.Machine`).

Each peer gets its own directory with its own copy of the images (built by
``setup(dir)``), opens the top image with ``blockdev-add`` (node ``top``), runs every
command through ``human-monitor-command`` (``qemu-io top "..."``), closes the node
again and stops. Then the two copies of every image named are compared: allocation
(``qemu-img map --output=json``, host offsets included, since both writers allocate in
the same order), ``qemu-img check`` (clean, and the same counts), and guest content
(``qemu-img compare``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.launcher.build import Built
from engine.launcher.machine import Machine
from engine.qmp import Engine
from tests.jobs.cmdline_peers import MachinePeer
from tests.support.differential import QemuSystemPeer, substitute
from tests.support.qemu import check, compare, map_json


def engine_machine_peer() -> MachinePeer:
    """The engine behind a VM's monitor, with nothing opened yet."""
    return MachinePeer(Machine(Engine(), Built()))


def top_options(**extra: Any) -> dict[str, Any]:
    """``blockdev-add`` arguments of a qcow2 node ``top`` on ``{dir}/top.qcow2``."""
    return {"driver": "qcow2", "node-name": "top",
            "file": {"driver": "file", "filename": "{dir}/top.qcow2"}, **extra}


def run_on(peer: Any, directory: Path, options: dict[str, Any],
           commands: Sequence[str], below: Sequence[dict[str, Any]] = ()) -> list[str]:
    """Open ``top`` (after the nodes ``below``, given as ``blockdev-add`` arguments), run
    the commands, close every node again; returns what each command answered."""
    for node in (*below, options):
        reply = peer.execute("blockdev-add", substitute(node, directory))
        assert "return" in reply, reply
    answers = []
    for command in commands:
        reply = peer.execute("human-monitor-command",
                             {"command-line": f'qemu-io top "{command}"'})
        assert "return" in reply, reply
        answers.append(reply["return"])
    for node in (options, *reversed(below)):
        reply = peer.execute("blockdev-del", {"node-name": node["node-name"]})
        assert "return" in reply, reply
    return answers


def run_both(tmp_path: Path, setup: Callable[[Path], None], options: dict[str, Any],
             commands: Sequence[str], images: Sequence[str] = ("top.qcow2",),
             below: Sequence[dict[str, Any]] = ()) -> None:
    """Run ``commands`` on both peers and assert their images are the same."""
    dirs = {name: tmp_path / name for name in ("engine", "qemu")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        setup(d)
    engine = engine_machine_peer()
    try:
        engine_answers = run_on(engine, dirs["engine"], options, commands, below)
    finally:
        engine.close()
    qemu = QemuSystemPeer(dirs["qemu"])
    try:
        qemu_answers = run_on(qemu, dirs["qemu"], options, commands, below)
    finally:
        qemu.stop()
    assert engine_answers == qemu_answers
    for image in images:
        assert_same_image(dirs["engine"] / image, dirs["qemu"] / image, commands)


def assert_same_image(ours: Path, theirs: Path, commands: Sequence[str] = ()) -> None:
    """Same allocation, same check counts, same guest content."""
    what = "; ".join(commands)
    assert map_json(ours) == map_json(theirs), f"map differs after: {what}"
    ours_check, theirs_check = check(ours), check(theirs)
    for report in (ours_check, theirs_check):
        report.pop("filename", None)
    assert ours_check == theirs_check, f"check differs after: {what}"
    assert compare(ours, theirs), f"content differs after: {what}"

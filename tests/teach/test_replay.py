"""Record a session on the bundled engine, replay it on qemu-storage-daemon 7.2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.formats import create_qcow2, open_image
from gui.commands import replay as replay_cli
from gui.scripting import dump_jsonl, dump_qmp_shell, load_script, script_from_traffic
from gui.scripting.peer import PeerCommandError, open_peer
from gui.scripting.signature import graph_signature

pytestmark = pytest.mark.qemu
MIB = 1 << 20


def _images(d: Path) -> None:
    d.mkdir()
    create_qcow2(d / "base.qcow2", 4 * MIB)
    create_qcow2(d / "mid.qcow2", 4 * MIB, backing_file="base.qcow2")
    create_qcow2(d / "top.qcow2", 4 * MIB, backing_file="mid.qcow2")
    create_qcow2(d / "other.qcow2", 4 * MIB)
    create_qcow2(d / "snap.qcow2", 4 * MIB, backing_file="top.qcow2")
    for name, pattern, off in (("base", 0xAA, 0), ("mid", 0xBB, MIB), ("top", 0xCC, 2 * MIB)):
        with open_image(d / f"{name}.qcow2", writable=True) as img:
            img.write(off, bytes([pattern]) * 65536)


def _qcow2(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": str(path)}, **extra}


async def _record(d: Path) -> tuple[str, dict[str, Any]]:
    """Edit a graph on a fresh bundled engine; return the exported log and final graph."""
    peer = await open_peer(None)
    try:
        x = peer.execute
        await x("blockdev-add", _qcow2("base", d / "base.qcow2"))
        await x("blockdev-add", _qcow2("mid", d / "mid.qcow2", backing="base"))
        await x("blockdev-add", _qcow2("top", d / "top.qcow2", backing="mid"))
        await x("blockdev-add", _qcow2("other", d / "other.qcow2"))
        await x("block-stream", {"job-id": "s1", "device": "top", "base-node": "base"})
        await peer.wait_job("s1", ["null"])
        await x("blockdev-reopen", {"options": [_qcow2("mid", d / "mid.qcow2",
                                                         backing="other")]})
        with pytest.raises(PeerCommandError, match="is busy"):
            await x("blockdev-del", {"node-name": "base"})
        await x("blockdev-add", _qcow2("snap", d / "snap.qcow2", backing=None))
        await x("blockdev-snapshot", {"node": "top", "overlay": "snap"})
        await x("block-commit", {"job-id": "c1", "device": "snap"})
        await peer.wait_job("c1", ["ready"])
        await x("job-complete", {"id": "c1"})
        await peer.wait_job("c1", ["null"])
        await x("query-named-block-nodes", {"flat": True})   # a query: not in the script
        graph = graph_signature(await peer.graph())
        script = script_from_traffic(peer.session.traffic)   # what the QMP log holds
    finally:
        await peer.close()
    return dump_jsonl(script), graph


async def test_recorded_session_replays_on_qemu_storage_daemon(
        tmp_path: Path, qsd_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "img"
    _images(d)
    pristine = tmp_path / "pristine"
    shutil.copytree(d, pristine)
    log, recorded_graph = await _record(d)
    script_path = tmp_path / "session.jsonl"
    script_path.write_text(log)
    script = load_script(script_path)
    assert [c.command for c in script.commands] == [
        "blockdev-add", "blockdev-add", "blockdev-add", "blockdev-add", "block-stream",
        "blockdev-reopen", "blockdev-del", "blockdev-add", "blockdev-snapshot",
        "block-commit", "job-complete"]
    assert script.commands[6].expected is not None and not script.commands[6].expected.ok

    shutil.rmtree(d)
    shutil.copytree(pristine, d)                     # the same files, as they were
    out = tmp_path / "graph.json"
    status = await replay_cli.run(replay_cli._parser().parse_args(
        [str(script_path), "--connect", qsd_address, "--graph-out", str(out)]))
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "(as recorded)" in printed and "job c1 reached 'ready'" in printed
    assert json.loads(out.read_text()) == json.loads(json.dumps(recorded_graph))


async def test_qmp_shell_export_replays_to_the_same_graph(tmp_path: Path) -> None:
    d = tmp_path / "img"
    _images(d)
    pristine = tmp_path / "pristine"
    shutil.copytree(d, pristine)
    log, recorded_graph = await _record(d)
    shell = tmp_path / "session.qmp"
    shell.write_text(dump_qmp_shell(load_script_text(log)))
    assert "# wait for job c1 to become ready" in shell.read_text()
    assert "# expect error: Node 'base' is busy" in shell.read_text()
    shutil.rmtree(d)
    shutil.copytree(pristine, d)
    out = tmp_path / "graph.json"
    status = await replay_cli.run(replay_cli._parser().parse_args(
        [str(shell), "--engine", "--graph-out", str(out), "-q"]))
    assert status == 0
    assert json.loads(out.read_text()) == json.loads(json.dumps(recorded_graph))


def load_script_text(text: str):  # type: ignore[no-untyped-def]
    from gui.scripting import parse_script

    return parse_script(text)


async def test_replay_reports_a_divergence(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "a.qcow2"
    create_qcow2(img, MIB)
    script = tmp_path / "s.jsonl"
    script.write_text("\n".join(json.dumps(m) for m in [
        {"execute": "blockdev-add", "arguments": _qcow2("a", img)},
        {"error": {"class": "GenericError", "desc": "some recorded failure"}},
        {"execute": "blockdev-del", "arguments": {"node-name": "a"}},
    ]) + "\n")
    status = await replay_cli.run(replay_cli._parser().parse_args([str(script)]))
    printed = capsys.readouterr().out
    assert status == 1
    assert "!! line 1: recorded error was \"some recorded failure\"" in printed
    assert "1 step(s) did not go as recorded (stopped)" in printed


def test_replay_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"execute": "x"}\n{"execute": \n')
    assert replay_cli.main([str(bad)]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    ok = tmp_path / "ok.qmp"
    ok.write_text("query-version\n")
    assert replay_cli.main([str(ok), "--connect", f"unix:{tmp_path}/nothing.sock"]) == 2
    assert "cannot connect" in capsys.readouterr().err

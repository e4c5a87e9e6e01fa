"""The offline window and the live-vs-disk dialog, offscreen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.formats import open_image
from tests.gui.conftest import aloop  # noqa: F401 - the qasync loop fixture
from tests.support.qemu import check, compare, qemu_img

pytestmark = [pytest.mark.gui, pytest.mark.qemu]


@pytest.fixture
def broken_dir(chain_dirs: tuple[Path, Path, Path]) -> Path:
    """The chain with mid.qcow2's backing file moved away (a broken link)."""
    ours, _, _ = chain_dirs
    (ours / "old").mkdir()
    shutil.move(ours / "base.qcow2", ours / "old" / "base.qcow2")
    return ours


def _window(qtbot, paths, answers=None):  # type: ignore[no-untyped-def]
    from gui.offline.window import OfflineWindow

    asked: list[tuple[str, str]] = []

    def confirm(title: str, text: str) -> bool:
        asked.append((title, text))
        return True if answers is None else answers.pop(0)

    w = OfflineWindow([str(p) for p in paths], confirm=confirm)
    qtbot.addWidget(w)
    return w, asked


def test_broken_link_is_drawn_and_fixed_from_the_context_menu(qtbot, broken_dir: Path) -> None:  # type: ignore[no-untyped-def]
    w, asked = _window(qtbot, [broken_dir / "top.qcow2"])
    mid = str(broken_dir / "mid.qcow2")
    missing = f"missing:{broken_dir / 'base.qcow2'}"
    assert w.graph is not None
    assert (mid, "backing", missing) in w.view.broken_edges
    assert w.view.lines[(mid, "backing", missing)].broken
    assert mid in w.view.problem_nodes
    assert "1 broken link" in w.statusBar().currentMessage()
    w.select(str(broken_dir / "top.qcow2"))
    assert "is missing" in w.details.toPlainText()
    assert [layer.name for layer in w.bars.report.layers] == ["top.qcow2", "mid.qcow2"]

    labels = [label for label, _ in w.actions_for(mid)]
    assert labels[0] == "Fix: Detach the backing file (header only)"
    # the placeholder of the missing file offers the same fixes
    assert [label for label, _ in w.actions_for(missing)] == [labels[0]]
    # put the base back under another name and re-point the header there (unsafe fix)
    shutil.copy(broken_dir / "old" / "base.qcow2", broken_dir / "base2.qcow2")
    result = w.run_rebase(mid, "base2.qcow2", safe=False)
    assert result is not None and result.warnings
    assert asked and "qemu-img rebase -u -f qcow2 -b base2.qcow2" in asked[-1][1]
    assert "qemu-img rebase -u" in w.log.toPlainText()
    assert not w.graph.broken_edges                      # reloaded: the chain is whole
    assert compare(broken_dir / "top.qcow2", _orig(broken_dir) / "top.qcow2")


def _orig(ours: Path) -> Path:
    return ours.parent / "orig"


def test_edits_from_the_window_match_qemu_img(qtbot, chain_dirs) -> None:  # type: ignore[no-untyped-def]
    ours, ref, orig = chain_dirs
    w, asked = _window(qtbot, [ours / "top.qcow2", ours / "alt.qcow2"])
    top = str(ours / "top.qcow2")
    assert w.run_rebase(top, "alt.qcow2", safe=True) is not None
    qemu_img("rebase", "-f", "qcow2", "-b", "alt.qcow2", "-F", "qcow2", ref / "top.qcow2")
    assert compare(ours / "top.qcow2", ref / "top.qcow2")
    check(ours / "top.qcow2")
    assert w.graph.snapshot.backing(top) == str(ours / "alt.qcow2")
    assert w.run_flatten(top, str(ours / "flat.qcow2")) is not None
    assert str(ours / "flat.qcow2") in w.graph.snapshot.nodes
    assert compare(ours / "flat.qcow2", orig / "top.qcow2")
    assert w.run_commit(top) is not None
    assert compare(ours / "top.qcow2", orig / "top.qcow2")
    assert [t for t, _ in asked] == ["Rebase", "Flatten", "Commit"]
    log = w.log.toPlainText().splitlines()
    assert log[0].startswith("qemu-img rebase -f qcow2 -b alt.qcow2 -F qcow2")
    assert log[1].startswith("qemu-img convert -f qcow2 -O qcow2")
    assert log[2].startswith("qemu-img commit -f qcow2")


def test_cancelled_edit_changes_nothing(qtbot, chain_dirs) -> None:  # type: ignore[no-untyped-def]
    ours, _, _ = chain_dirs
    before = (ours / "top.qcow2").read_bytes()
    w, asked = _window(qtbot, [ours / "top.qcow2"], answers=[False])
    assert w.run_stream(str(ours / "top.qcow2")) is None
    assert asked and (ours / "top.qcow2").read_bytes() == before
    assert w.log.toPlainText() == ""


def test_failed_edit_is_reported_and_changes_nothing(qtbot, broken_dir: Path) -> None:  # type: ignore[no-untyped-def]
    w, _ = _window(qtbot, [broken_dir / "top.qcow2"])
    before = (broken_dir / "top.qcow2").read_bytes()
    assert w.run_stream(str(broken_dir / "top.qcow2")) is None   # the chain cannot be read
    assert "failed" in w.log.toPlainText() and "unsafe mode" in w.log.toPlainText()
    assert (broken_dir / "top.qcow2").read_bytes() == before


def test_compare_dialog_marks_in_memory_links(qtbot, chain_dirs) -> None:  # type: ignore[no-untyped-def]
    from engine.graph.snapshot import GraphSnapshot
    from engine.qmp import Engine
    from gui.widgets.compare_dialog import CompareDialog

    ours, _, _ = chain_dirs
    with Engine() as eng:
        for name in ("alt", "top"):
            eng.execute("blockdev-add", {"driver": "qcow2", "node-name": name, "file": {
                "driver": "file", "filename": str(ours / f"{name}.qcow2")}})
        eng.execute("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "top", "backing": "alt",
            "file": {"driver": "file", "filename": str(ours / "top.qcow2")}}]})
        live = GraphSnapshot.from_qmp(eng.execute("x-debug-query-block-graph"),
                                      eng.execute("query-named-block-nodes", {"flat": True}))
        dialog = CompareDialog(live)
        qtbot.addWidget(dialog)
    assert [d.kind for d in dialog.differences] == ["link"]
    assert "top" in dialog.live_view.problem_nodes
    assert ("top", "backing", "alt") in dialog.live_view.broken_edges
    # the disk side draws the header chain: top -> mid -> base, alt alone
    disk = dialog.disk.snapshot
    assert disk.backing(str(ours / "top.qcow2")) == str(ours / "mid.qcow2")
    assert str(ours / "top.qcow2") in dialog.disk_view.problem_nodes
    assert dialog.list.item(0).text().startswith("top: in memory its backing is alt")
    with open_image(ours / "top.qcow2") as img:
        assert img.backing_file == "mid.qcow2"


def test_editor_scene_draws_the_offline_graph(qtbot, broken_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The offline graph source feeds the editor's canvas like a live peer does."""
    from engine.offline import offline_snapshot
    from gui.views.scene import GraphScene

    graph = offline_snapshot([broken_dir / "top.qcow2", broken_dir / "alt.qcow2"])
    scene = GraphScene()
    scene.show_snapshot(graph.snapshot)
    assert set(scene.nodes) == set(graph.snapshot.nodes)
    assert len(scene.edges) == len(graph.snapshot.edges) == 2
    (parent, role, child), = graph.broken_edges
    assert (parent, role, child) in scene.edges and child.startswith("missing:")


def _modal_closer(record: list[object], ticks: list[int]) -> None:
    """Close the next modal message box, noting its text and how far the ticker got."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def close() -> None:
        modal = QApplication.activeModalWidget()
        if not isinstance(modal, QMessageBox):
            QTimer.singleShot(20, close)
            return
        record.append((modal.text(), len(ticks)))
        modal.done(int(QMessageBox.StandardButton.Ok))

    QTimer.singleShot(20, close)


def test_compare_with_a_live_peer_reads_it_on_the_windows_loop(  # type: ignore[no-untyped-def]
        qtbot, aloop, chain_dirs, tmp_path) -> None:  # noqa: F811 - the fixture
    """Compare with a live peer…: the graph of a real qemu-storage-daemon, whose top was
    re-pointed in memory, read on the editor's own loop and set beside the headers."""
    from gui.widgets.compare_dialog import compare_with_address
    from tests.gui.conftest import run
    from tests.support.peer import started_peer

    ours, _, _ = chain_dirs
    with started_peer("qsd", tmp_path) as peer:
        for name in ("alt", "top"):
            peer.ok("blockdev-add", {"driver": "qcow2", "node-name": name, "file": {
                "driver": "file", "node-name": f"{name}-file",
                "filename": str(ours / f"{name}.qcow2")}})
        peer.ok("blockdev-reopen", {"options": [{
            "driver": "qcow2", "node-name": "top", "backing": "alt", "file": "top-file"}]})
        dialog = run(qtbot, aloop, compare_with_address(peer.address))
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert [d.kind for d in dialog.differences] == ["link"]
    assert ("top", "backing", "alt") in dialog.live_view.broken_edges
    assert dialog.isVisible()


def test_compare_with_a_silent_peer_keeps_the_window_responsive(  # type: ignore[no-untyped-def]
        qtbot, aloop, tmp_path) -> None:  # noqa: F811 - the fixture
    """A peer that accepts and never greets: while the comparison waits for it, the
    window's loop keeps running; then it gives up with a message that says why."""
    import asyncio
    import socket

    from gui.widgets.compare_dialog import compare_with_address

    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)                       # connects succeed; nothing is ever said
    ticks: list[int] = []
    shown: list[object] = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    tick_task = aloop.create_task(ticker())
    try:
        _modal_closer(shown, ticks)
        task = aloop.create_task(compare_with_address(f"unix:{path}", None, timeout=1.0))
        qtbot.waitUntil(task.done, timeout=20000)
        assert task.result() is None
        (text, ticks_then), = shown
        assert "no answer within 1 s" in str(text) and str(path) in str(text)
        assert ticks_then > 20, "the window's loop stood still while the peer was read"
    finally:
        tick_task.cancel()
        listener.close()


def test_no_stream_or_commit_is_offered_into_a_missing_backing_file(  # type: ignore[no-untyped-def]
        qtbot, broken_dir: Path, chain_dirs) -> None:
    w, _ = _window(qtbot, [broken_dir / "top.qcow2"])
    for image in ("mid.qcow2", "top.qcow2"):     # mid's backing file is gone: below both
        labels = [label for label, _ in w.actions_for(str(broken_dir / image))]
        assert not any(label.startswith(("Commit", "Stream")) for label in labels), labels
        assert "Flatten into a new image…" in labels
    # with the chain whole they are offered
    whole, _ = _window(qtbot, [chain_dirs[1] / "top.qcow2"])
    labels = [label for label, _ in whole.actions_for(str(chain_dirs[1] / "top.qcow2"))]
    assert "Commit into its backing file" in labels
    assert "Stream the chain into this image" in labels


def test_a_flattened_image_gets_the_mode_qemu_img_gives_a_new_image(  # type: ignore[no-untyped-def]
        qtbot, chain_dirs) -> None:
    ours, ref, _ = chain_dirs
    w, _ = _window(qtbot, [ours / "top.qcow2"])
    assert w.run_flatten(str(ours / "top.qcow2"), str(ours / "flat.qcow2")) is not None
    qemu_img("convert", "-f", "qcow2", "-O", "qcow2", ref / "top.qcow2", ref / "flat.qcow2")
    mode = (ours / "flat.qcow2").stat().st_mode & 0o777
    assert mode == (ref / "flat.qcow2").stat().st_mode & 0o777
    assert mode & 0o044        # not the 0600 of a temporary file

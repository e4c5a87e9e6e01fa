"""Before an edit runs, the window says what it does to the disks and exports on the graph.

The demo chains on a real peer (the bundled engine with a drive on each VM's top, or
qemu-storage-daemon with an NBD export of vm1-top): dragging vm1-top's backing arrow from
vm1-mid onto base re-points the disk vm1 reads. The review names the drive (or export),
says in how many bytes it will read other layers' data, which layer it no longer reads
and what it reads instead — numbers checked here against ``qemu-img map`` of the chain
before and after — and asks, with the warning in red, before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel

from gui.planner.consequences import size_text
from gui.widgets.plan_review import PlanReviewDialog
from gui.window.main_window import MainWindow
from tests.gui.conftest import ScriptedPrompter
from tests.gui.test_editor import drag, open_demo
from tests.support.layer_maps import chain_name, changes, qemu_map, sources
from tests.support.peer import Peer

pytestmark = pytest.mark.gui


def attach_reader(qtbot: Any, window: MainWindow, peer: Peer, tmp_path: Path) -> str:
    """A backend on vm1-top: the engine's demo has drive vm1; qemu-storage-daemon gets
    an NBD export. Returns the name the review must use for it."""
    if peer.kind == "bundled engine":
        return "vm1"
    peer.ok("nbd-server-start", {"addr": {"type": "unix", "data": {
        "path": str(tmp_path / "nbd.sock")}}})
    peer.ok("block-export-add", {"type": "nbd", "id": "exp-vm1", "node-name": "vm1-top"})
    window.refresh()
    qtbot.waitUntil(lambda: "backend:#vm1-top" in window.scene.nodes
                    and "backend:#vm1-top" in window.edits.labels, timeout=10000)
    return "export exp-vm1"


def drag_vm1_top_onto_base(qtbot: Any, window: MainWindow) -> None:
    window.view.fit()
    edge = window.scene.edges[("vm1-top", "backing", "vm1-mid")]
    drag(qtbot, window, edge.point_at(0.95), window.scene.nodes["base"].scene_rect().center())


def test_re_pointing_under_an_attached_disk_warns_with_counts_qemu_img_map_confirms(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    name = attach_reader(qtbot, window, gui_peer, tmp_path)
    prompter: ScriptedPrompter = window.prompter  # type: ignore[assignment]
    prompter.confirm_answer = False
    before_seq = window.bridge.session.traffic.last_seq
    drag_vm1_top_onto_base(qtbot, window)
    qtbot.waitUntil(lambda: bool(prompter.reviews) and not window.edits.running
                    and "cancelled" in window.message_label.full_text(), timeout=10000)
    (review,) = prompter.reviews
    assert "blockdev-reopen" not in window.bridge.session.traffic.sent_commands(before_seq)

    # the numbers, against qemu-img map of the chain before and after
    demo = tmp_path / "demo"
    top, mid, base = (str(demo / f"{n}.qcow2") for n in ("vm1-top", "vm1-mid", "base"))
    total, hidden, revealed = changes(
        sources(qemu_map(top), ["vm1-top", "vm1-mid", "base"]),
        sources(qemu_map(chain_name(top, base)), ["vm1-top", "base"]))
    assert review.consequences is not None
    (reader,) = review.consequences.attached_changes
    assert reader.label.startswith(name)
    assert (reader.changed, dict(reader.hidden), dict(reader.revealed)) == (
        total, hidden, revealed)
    assert reader.left == ("vm1-mid",)

    # what the user reads: the warning names the disk and the amount; the lines the layers
    assert len(review.danger) == 1 and review.needs_confirmation
    assert name in review.danger[0] and size_text(total) in review.danger[0]
    dialog = PlanReviewDialog(review, window)
    danger = dialog.findChild(QLabel, "danger").text()
    lines = dialog.findChild(QLabel, "consequences").text()
    assert size_text(total) in danger
    assert f"{size_text(hidden['vm1-mid'])} of vm1-mid" in lines
    assert f"{size_text(revealed['base'])} of base" in lines
    assert f"{size_text(revealed[None])} of zeros" in lines
    assert "still names vm1-mid.qcow2" in lines
    assert dialog.run_button.text() == "Execute" and not dialog.run_button.isDefault()
    dialog.deleteLater()

    # confirmed, it runs: one reopen, and the peer reads vm1-top over base
    prompter.confirm_answer = True
    drag_vm1_top_onto_base(qtbot, window)
    qtbot.waitUntil(lambda: window.scene.snapshot.backing("vm1-top") == "base"
                    and not window.edits.running, timeout=10000)
    assert window.bridge.session.traffic.sent_commands(before_seq).count("blockdev-reopen") == 1
    named = {n["node-name"]: n for n in gui_peer.ok("query-named-block-nodes", {"flat": True})}
    assert named["vm1-top"]["backing_file"] == base
    assert "vm1-mid" in named and mid in named["vm1-mid"]["file"]   # added by name: it stays

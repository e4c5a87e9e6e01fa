"""Side by side: the graph of a live peer and the chains its images name on disk.

Left, the live graph as the peer reports it; right, the same image files read from disk
(:func:`engine.offline.offline_snapshot`); below, every difference found by
:func:`engine.offline.compare_with_disk`, and the nodes concerned are marked on both
sides. Typical finding: a link re-pointed with ``blockdev-reopen`` (memory only) while
the header still names the old backing file.
"""

from __future__ import annotations

import asyncio
import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.graph.drivers import ENGINE_IMAGE_DRIVERS
from engine.graph.snapshot import GraphSnapshot
from engine.offline import Difference, compare_with_disk, offline_snapshot
from engine.offline.compare import image_path
from gui.scripting.peer import open_peer
from gui.widgets.compact_graph import CompactGraphView
from gui.widgets.modal import nested_event_loop


def disk_paths(snapshot: GraphSnapshot) -> list[str]:
    """Image files of the live graph's format nodes that have no format-node parent."""
    paths = []
    for info in snapshot.block_nodes():
        if info.driver not in ENGINE_IMAGE_DRIVERS:
            continue
        if any(snapshot.nodes[e.parent].driver in ENGINE_IMAGE_DRIVERS
               for e in snapshot.parents(info.key) if e.role == "backing"):
            continue
        path = image_path(info.filename)
        if path and os.path.exists(path):
            paths.append(path)
    return paths


class CompareDialog(QDialog):
    def __init__(self, live: GraphSnapshot, parent: QWidget | None = None,
                 label: str = "live peer") -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Live graph vs. disk — {label}")
        self.live = live
        self.differences: list[Difference] = compare_with_disk(live)
        self.disk = offline_snapshot(disk_paths(live))
        lay = QVBoxLayout(self)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(split)
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel(f"<b>In memory</b> ({label})", left))
        self.live_view = CompactGraphView(left)
        ll.addWidget(self.live_view)
        right = QWidget(split)
        rl = QVBoxLayout(right)
        rl.addWidget(QLabel("<b>On disk</b> (image headers)", right))
        self.disk_view = CompactGraphView(right)
        rl.addWidget(self.disk_view)
        split.addWidget(left)
        split.addWidget(right)
        lay.addWidget(split, 1)
        self.list = QListWidget(self)
        for d in self.differences:
            self.list.addItem(d.message)
        if not self.differences:
            self.list.addItem("No differences: every live backing link matches its header.")
        self.list.setMaximumHeight(140)
        lay.addWidget(self.list)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

        marked_live = {d.node for d in self.differences}
        broken_live = {(d.node, "backing", self.live.backing(d.node) or "")
                       for d in self.differences if d.kind == "link"}
        self.live_view.set_problems(marked_live, broken_live)
        self.live_view.show_snapshot(live)
        marked_disk = set()
        for d in self.differences:
            path = image_path(live.nodes[d.node].filename)
            if path:
                marked_disk.add(os.path.abspath(path))
        self.disk_view.set_problems(marked_disk | set(self.disk.problem_nodes()),
                                    self.disk.broken_edges)
        self.disk_view.show_snapshot(self.disk.snapshot)
        self.resize(1100, 640)


#: how long reading a peer's graph may take before the comparison gives up
READ_TIMEOUT = 30.0


async def read_graph(address: str) -> GraphSnapshot:
    """The graph of the peer at ``address``, read on a session of its own."""
    peer = await open_peer(address)
    try:
        return await peer.graph()
    finally:
        await peer.close()


async def compare_with_address(address: str, parent: QWidget | None = None,
                               timeout: float = READ_TIMEOUT) -> CompareDialog | None:
    """Read the graph of the peer at ``address`` and show the dialog (None: could not).

    Runs on the window's own asyncio loop (qasync): the window stays responsive while
    the peer is reached and read, for up to ``timeout`` seconds.
    """
    try:
        async with asyncio.timeout(timeout):
            live = await read_graph(address)
    except Exception as exc:  # shown to the user; nothing else to clean up
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else exc
        with nested_event_loop():
            QMessageBox.warning(parent, "Compare",
                                f"Cannot read the graph of {address}: {reason}")
        return None
    dialog = CompareDialog(live, parent, address)
    dialog.show()
    return dialog

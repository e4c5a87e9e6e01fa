"""The tour panel driven like a user: Start, Next, Next, …, Previous, Restart."""

from __future__ import annotations

import pytest

from gui.scripting.peer import ScriptPeer, open_peer
from gui.tours.model import list_tours

pytestmark = [pytest.mark.gui]

TOURS = [t.name for t in list_tours()]


class FakeCanvas:
    def __init__(self) -> None:
        self.snapshots: list = []
        self.highlights: list = []

    def show_snapshot(self, snapshot) -> None:  # type: ignore[no-untyped-def]
        self.snapshots.append(snapshot)

    def set_highlight(self, keys) -> None:  # type: ignore[no-untyped-def]
        self.highlights.append(tuple(keys))


def _panel(qtbot, factory):  # type: ignore[no-untyped-def]
    from gui.tours.panel import TourPanel

    panel = TourPanel(peer_factory=factory)
    qtbot.addWidget(panel)
    panel.resize(520, 640)
    panel.show()
    canvas = FakeCanvas()
    panel.attach_canvas(canvas)
    return panel, canvas


def _shutdown(qtbot, loop, panel) -> None:  # type: ignore[no-untyped-def]
    task = loop.create_task(panel.shutdown())
    qtbot.waitUntil(task.done, timeout=10000)
    task.result()


def _drive(qtbot, panel, name: str) -> list:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    finished: list[bool] = []
    panel.tourFinished.connect(finished.append)
    panel.select_tour(name)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is not None
                    and panel.runner.peer is not None, timeout=20000)
    while not panel.runner.finished:
        before = panel.runner.position
        assert panel.next_button.isEnabled()
        qtbot.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda b=before: not panel.busy and panel.runner.position == b + 1,
                        timeout=30000)
        assert panel.error is None, panel.error
    assert not panel.next_button.isEnabled()
    return finished


@pytest.mark.parametrize("name", TOURS)
def test_every_tour_runs_through_the_panel(qtbot, qloop, name: str) -> None:  # type: ignore[no-untyped-def]
    panel, canvas = _panel(qtbot, None)           # default: a fresh bundled engine
    finished = _drive(qtbot, panel, name)
    runner = panel.runner
    problems = [(r.index, r.problems) for r in runner.results if not r.ok]
    assert problems == []
    # every step highlights nodes that exist in the graph after it
    missing = [(r.index, h) for r in runner.results for h in r.step.highlight
               if h not in r.snapshot.nodes]
    assert missing == []
    assert finished == [True]
    assert "As the tour says" in panel.text.toPlainText()
    assert "End of the tour" in panel.text.toPlainText()
    # the canvas got the tour's graph and each step's highlight
    assert canvas.snapshots and canvas.highlights[-1] == runner.tour.steps[-1].highlight
    last = canvas.snapshots[-1]
    assert all(h in last.nodes for h in runner.tour.steps[-1].highlight)
    _shutdown(qtbot, qloop, panel)


def test_previous_and_restart_rebuild_the_state(qtbot, qloop) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    panel, canvas = _panel(qtbot, None)
    panel.select_tour("reopen-backing")
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is not None
                    and panel.runner.peer is not None, timeout=20000)
    for _ in range(5):
        qtbot.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.runner.position == 5
    assert panel.runner.snapshot.backing("top") == "other"
    first_dir = panel.runner.directory
    qtbot.mouseClick(panel.previous_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.runner.position == 4
    assert panel.runner.snapshot.backing("top") == "base"      # before the re-point
    assert panel.runner.directory != first_dir                   # fresh scratch images
    assert not first_dir.exists()
    assert "Reopen without 'backing'" in panel.text.toPlainText()
    qtbot.mouseClick(panel.restart_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.runner.position == 0
    assert not panel.previous_button.isEnabled()
    assert canvas.highlights[-1] == ()
    _shutdown(qtbot, qloop, panel)


def test_panel_on_qemu_storage_daemon(qsd_address: str, qtbot, qloop) -> None:  # type: ignore[no-untyped-def]
    """The same panel against a real QEMU peer: the tours' texts are QEMU's."""

    async def factory() -> ScriptPeer:
        return await open_peer(qsd_address)

    panel, _ = _panel(qtbot, factory)
    assert _drive(qtbot, panel, "atomic-reopen") == [True]
    _shutdown(qtbot, qloop, panel)


def test_tour_drives_the_editors_scene(qtbot, qloop) -> None:  # type: ignore[no-untyped-def]
    """The panel on the editor's GraphScene: the graph drawn, the step's nodes haloed."""
    from PySide6.QtCore import Qt

    from gui.tours.panel import SceneCanvas, TourPanel
    from gui.views.scene import GraphScene

    scene = GraphScene()
    panel = TourPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.attach_canvas(SceneCanvas(scene))
    panel.select_tour("reopen-backing")
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is not None
                    and panel.runner.peer is not None, timeout=20000)
    for _ in range(3):
        qtbot.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert {"top", "base"} <= set(scene.nodes)
    lit = {k for k, item in scene.nodes.items() if item.highlighted}
    assert lit == {"top", "base"}
    _shutdown(qtbot, qloop, panel)


def test_tour_window_shows_the_tour_on_the_editors_scene(qtbot, qloop) -> None:  # type: ignore[no-untyped-def]
    from gui.tours.window import TourWindow

    window = TourWindow("stream")
    qtbot.addWidget(window)
    window.show()
    panel = window.panel
    panel.start()
    qtbot.waitUntil(lambda: not panel.busy and panel.runner is not None
                    and panel.runner.peer is not None, timeout=20000)
    for _ in range(5):
        panel._on_next()
        qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.error is None and panel.runner.last.ok
    assert panel.runner.last.step.title == "Stream to a base: drop mid"
    lit = {k for k, item in window.scene.nodes.items() if item.highlighted}
    assert lit == {"top", "base"}
    assert window.scene.snapshot is not None and window.scene.snapshot.backing("top") == "base"
    _shutdown(qtbot, qloop, panel)


def test_install_teaching_adds_menu_entries(qtbot, qloop, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMainWindow

    from engine.formats import create_qcow2
    from gui.tours.teaching import install_teaching, open_offline

    window = QMainWindow()
    qtbot.addWidget(window)
    window.menuBar().addMenu("&File")
    actions = install_teaching(window)
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Help"]                      # reuses File, adds Help
    assert actions["tours"].parent() is window
    create_qcow2(tmp_path / "a.qcow2", 1 << 20)
    ow = open_offline(window, [str(tmp_path / "a.qcow2")])
    assert str(tmp_path / "a.qcow2") in ow.graph.snapshot.nodes
    assert window.teaching_windows == [ow]
    actions["tours"].trigger()
    tw = window.teaching_windows[-1]
    qtbot.waitUntil(lambda: tw.panel.runner is not None and not tw.panel.busy, timeout=20000)
    assert tw.panel.runner.peer is not None
    _shutdown(qtbot, qloop, tw.panel)

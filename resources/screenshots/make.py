"""Take the README's screenshots of the real editor window.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python resources/screenshots/make.py

Opens the editor on the bundled engine with the demo chains, exactly as
``blockgraph`` does, and saves:

* ``demo.png`` / ``demo-dark.png`` — the demo graph, light and dark;
* ``drag.png`` — a backing link being dragged onto a node that would make a cycle
  (refused, with QEMU's reason beside the cursor), driven by real mouse events;
* ``job.png`` — a stream job running (throttled with ``block-job-set-speed`` so
  it is still running when the picture is taken);
* ``host-fit.png`` / ``host-zoomed.png`` — a host of 200 VMs' chains, packed to the
  window's shape, fitted to the view and then zoomed in at 100 % with the minimap
  framing the part in view;
* ``folded.png`` — the same host with one VM's 300-layer chain folded into a card.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import qasync  # after PySide6
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo  # noqa: E402
from gui.widgets.dialogs import DialogPrompter  # noqa: E402
from gui.window.main_window import MainWindow  # noqa: E402
from tests.support.graphs import deep_chain, host_of_chains  # noqa: E402


async def pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


def save(window: MainWindow, name: str) -> None:
    QApplication.processEvents()
    window.grab().save(str(HERE / name))
    print("wrote", HERE / name)


async def shoot(window: MainWindow, scratch: Path) -> None:
    await window.open_bundled(scratch / "demo")
    window.resize(1500, 940)
    await pause(0.5)
    window.inspect("vm1-mid")
    window.scene.select(["vm1-mid"])
    window.view.fit()
    await pause(0.6)
    save(window, "demo.png")

    window.act_dark.setChecked(True)
    await pause(0.4)
    save(window, "demo-dark.png")
    window.act_dark.setChecked(False)
    await pause(0.3)

    # a refused drag: base's backing port onto vm1-top (base <- vm1-mid <- vm1-top)
    window.view.fit()
    await pause(0.3)
    base, top = window.scene.nodes["base"], window.scene.nodes["vm1-top"]
    vp = window.view.viewport()
    start = window.view.mapFromScene(base.backing_port_rect().center())
    end = window.view.mapFromScene(top.scene_rect().center())
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 11):
        QTest.mouseMove(vp, start + (end - start) * (i / 10))
        await pause(0.02)
    await pause(0.3)
    save(window, "drag.png")
    QTest.keyClick(window.view, Qt.Key.Key_Escape)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    await pause(0.3)

    # a running stream job, throttled so the picture catches it mid-way
    session = window.bridge.session
    window.docks["jobs"].raise_()
    # a job started with a speed limit (the planner's stream plan has none) so that
    # the picture catches it running; the editor shows it like any job on the peer
    await session.execute("block-stream", {"job-id": "stream-vm1-top", "device": "vm1-top",
                                           "speed": 384 * 1024})
    await pause(1.6)
    session.request_refresh()
    await pause(0.6)
    window.view.fit()
    window.view.center_on_node("vm1-top", select=True)
    await pause(0.3)
    save(window, "job.png")
    await session.execute("block-job-set-speed", {"device": "stream-vm1-top", "speed": 0})
    await pause(1.0)
    await host_shots(window)


def host_with_a_deep_chain() -> GraphSnapshot:
    """200 VMs' chains, and one more VM whose disk is 300 snapshots deep."""
    host, deep = host_of_chains(200), deep_chain(300)

    def renamed(key: str) -> str:
        return "backend:legacy" if key == "backend:vm0" else f"legacy-{key}"

    nodes = list(host.nodes.values()) + [
        NodeInfo(**{**{f: getattr(n, f) for f in n.__slots__}, "key": renamed(n.key),
                    "name": "legacy" if n.kind == "block-backend" else renamed(n.key)})
        for n in deep.nodes.values()]
    edges = list(host.edges) + [EdgeInfo(renamed(e.parent), renamed(e.child), e.role, e.perm,
                                         e.shared_perm) for e in deep.edges]
    return GraphSnapshot(nodes, edges)


async def host_shots(window: MainWindow) -> None:
    """A big host, read from a snapshot rather than a peer (no QEMU runs 200 VMs here)."""
    await window.close_session()
    window.jobs.clear_finished()
    window.setWindowTitle("blockgraph — a host of 200 VMs")
    vp = window.view.viewport()
    window.scene.aspect = vp.width() / vp.height()
    window.show_snapshot(host_of_chains(200))
    window.view.fit()
    window.show_message("a host of 200 VMs: each VM's chain in its frame, packed to the "
                        "window's shape")
    await pause(0.6)
    window.minimap.rebuild()
    await pause(0.3)
    save(window, "host-fit.png")
    window.view.reset_zoom()
    window.view.center_on_node("vm57-top")
    await pause(0.3)
    window.minimap.rebuild()
    await pause(0.3)
    save(window, "host-zoomed.png")
    window.scene.reset()
    window.show_snapshot(host_with_a_deep_chain())
    window.view_controls.fold("legacy-layer299")
    window.scene.animation.finish()
    window.view.reset_zoom()
    window.view.center_on_node("legacy-layer299")
    await pause(0.4)
    window.minimap.rebuild()
    await pause(0.3)
    save(window, "folded.png")


def main() -> int:
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d)
        settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, scheme="light")
        window.prompter = DialogPrompter(window, preview_enabled=False)
        window.prompter.confirm = lambda title, text: True  # type: ignore[method-assign]
        window.show()
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(shoot(window, scratch))
            loop.run_until_complete(window.close_session())
    return 0


if __name__ == "__main__":
    sys.exit(main())

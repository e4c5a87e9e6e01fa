"""The canvas's painting layers: cards and links drawn in one pass each, kept in step
with selection, moves and hover."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from engine.graph.drivers import DRIVERS
from engine.graph.snapshot import BLOCK_NODE, NodeInfo
from gui.views.canvas import GraphCanvas
from gui.views.node_card import header_purpose
from gui.views.palette import LIGHT
from gui.views.scene import GraphScene
from tests.gui.test_layout import chains

pytestmark = pytest.mark.gui


def render(scene: GraphScene, source: QRectF, size: tuple[int, int]) -> tuple[QImage, float]:
    """Render ``source`` of the scene into an image; returns it and the scale used."""
    img = QImage(size[0], size[1], QImage.Format.Format_ARGB32)
    img.fill(QColor("#000000"))
    p = QPainter(img)
    scene.render(p, QRectF(0, 0, size[0], size[1]), source,
                 Qt.AspectRatioMode.IgnoreAspectRatio)
    p.end()
    return img, size[0] / source.width()


def pixel(img: QImage, source: QRectF, scale: float, at: QPointF) -> str:
    x = int((at.x() - source.x()) * scale)
    y = int((at.y() - source.y()) * scale)
    return img.pixelColor(x, y).name()


def shown_view(qtbot: Any) -> GraphCanvas:
    """A view at 100 % on the test chains' scene, shown."""
    scene = GraphScene()
    scene.show_snapshot(chains())
    view = GraphCanvas(scene)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    view.reset_zoom()
    return view


def test_zoomed_out_cards_are_rectangles_in_their_colour_and_follow_selection(
        qapp: QApplication) -> None:
    scene = GraphScene()
    scene.show_snapshot(chains())
    source = scene.graph_rect()
    size = (int(source.width() * 0.2), int(source.height() * 0.2))   # low detail
    base = scene.nodes["base"]
    centre = QPointF(base.px + base.width / 2, base.py + base.height / 2)
    img, scale = render(scene, source, size)
    assert pixel(img, source, scale, centre) == LIGHT.color(header_purpose(base.info)).name()
    scene.select(["base"])           # the cached rectangles must not keep the old colour
    img, scale = render(scene, source, size)
    assert pixel(img, source, scale, centre) == QColor(LIGHT.selected).name()
    # and a card moved away leaves nothing behind where it was
    base.place(base.px + 5000, base.py)
    scene.card_layer.cards_moved()
    img, scale = render(scene, source, size)
    assert pixel(img, source, scale, centre) != QColor(LIGHT.selected).name()


def test_cards_are_drawn_in_full_when_zoomed_in(qapp: QApplication) -> None:
    scene = GraphScene()
    scene.show_snapshot(chains())
    top = scene.nodes["top1"]
    source = QRectF(top.px - 10, top.py - 10, top.width + 20, top.height + 20)
    img, scale = render(scene, source, (int(source.width()), int(source.height())))
    # the header strip in its colour, the body in the card colour
    assert pixel(img, source, scale, QPointF(top.px + 100, top.py + 3)) == \
        LIGHT.color("format_header").name()
    assert pixel(img, source, scale, QPointF(top.px + 4, top.py + top.height - 30)) == \
        LIGHT.color("card").name()
    # nothing is painted outside the card but the background
    assert pixel(img, source, scale, QPointF(top.px - 8, top.py + 40)) != \
        LIGHT.color("card").name()


def test_links_are_found_under_the_cursor_and_hovering_one_shows_its_tooltip(
        qapp: QApplication, qtbot: Any) -> None:
    view = shown_view(qtbot)
    scene = view.graph_scene
    edge = scene.edges[("top1", "backing", "mid1")]
    on_link = edge.point_at(0.5)
    assert scene.edge_layer.edge_near(on_link, 3.0) is edge
    away = QPointF(on_link.x() + 40, on_link.y())
    assert scene.edge_layer.edge_near(away, 3.0) is None
    view.centerOn(on_link)
    QTest.mouseMove(view.viewport(), view.mapFromScene(away))
    QTest.mouseMove(view.viewport(), view.mapFromScene(on_link))
    qtbot.waitUntil(lambda: scene.edge_layer.hovered is edge, timeout=3000)
    assert edge.hover
    assert "top1" in scene.edge_layer.toolTip() and "backing" in scene.edge_layer.toolTip()
    scene.edge_layer.edge_changed(None)       # something else changes while hovered
    source = QRectF(on_link.x() - 20, on_link.y() - 20, 40, 40)
    render(scene, source, (40, 40))
    QTest.mouseMove(view.viewport(), view.mapFromScene(away))
    qtbot.waitUntil(lambda: scene.edge_layer.hovered is None, timeout=3000)
    assert not edge.hover
    # and the link is still drawn once the pointer has left it
    img, scale = render(scene, source, (40, 40))
    assert pixel(img, source, scale, on_link) == LIGHT.color("edge_backing").name()


def test_dragging_a_card_moves_it_and_reroutes_its_links(qapp: QApplication,
                                                         qtbot: Any) -> None:
    view = shown_view(qtbot)
    scene = view.graph_scene
    card = scene.nodes["top2"]
    grab = QPointF(card.px + 30, card.py + 50)
    view.centerOn(grab)
    start = view.mapFromScene(grab)
    end = start + QPoint(120, 0)
    QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 7):
        QTest.mouseMove(view.viewport(), start + (end - start) * (i / 6))
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier, end)
    assert card.px > grab.x() - 30 + 60          # it really moved right
    assert scene.selected_keys() == ["top2"]
    link = scene.edges[("top2", "backing", "base")]
    assert link.endpoints()[0] == card.bottom_port()
    assert scene.card_layer.boundingRect().contains(card.scene_rect())
    assert scene.node_at(QPointF(card.px + 30, card.py + 50)) is card


def test_header_colour_follows_the_driver_table() -> None:
    """Every driver of the table gets its kind's colour: protocols, nodes without data of
    their own (filters, quorum, snapshot-access), and formats."""
    def purpose(driver: str) -> str:
        return header_purpose(NodeInfo(key="n", kind=BLOCK_NODE, name="n", driver=driver))

    for name in ("file", "nbd", "vvfat", "nvme-io_uring", "virtio-blk-vhost-user"):
        assert purpose(name) == "protocol_header", name
    for name in ("throttle", "blkreplay", "quorum", "snapshot-access", "mirror_top"):
        assert purpose(name) == "filter_header", name
    for name in ("qcow2", "raw", "luks", "an-unknown-driver"):
        assert purpose(name) == "format_header", name
    assert {purpose(n) for n in DRIVERS} == {"protocol_header", "filter_header",
                                             "format_header"}

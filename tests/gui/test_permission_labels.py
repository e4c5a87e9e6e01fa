"""View → Show permissions: labels in words, explained by a legend, drawn over the cards.

The labels said ``perm r/w · shared r/wu/rs`` (letters nobody could read without QEMU's
source), there was no legend, and they were drawn with the links, under the cards, so a
label that fell on a card was hidden. Now a link reads "takes read+write · shares
read+unchanged-write+resize", a legend over the canvas says what each word means, and
the labels are their own layer above the cards; a picture of the canvas shows a label's
plate painted over a card where one lies on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from gui.views.levels import NODE_Z
from gui.window.main_window import MainWindow
from tests.gui.test_editor import open_demo
from tests.support.peer import Peer

pytestmark = pytest.mark.gui


def test_permission_labels_are_words_with_a_legend_over_the_cards(
        qtbot: Any, aloop: Any, window: MainWindow, gui_peer: Peer, tmp_path: Path) -> None:
    open_demo(qtbot, aloop, window, gui_peer, tmp_path)
    assert not window.perm_legend.isVisible()
    window.act_perms.trigger()
    edge = window.scene.edges[("vm1-top", "backing", "vm1-mid")]
    perm = {"consistent-read": "read", "write": "write", "write-unchanged": "unchanged-write",
            "resize": "resize", "graph-mod": "graph-mod"}
    expected = ("takes " + ("+".join(perm[p] for p in edge.info.perm) or "nothing")
                + " · shares " + ("+".join(perm[p] for p in edge.info.shared_perm)
                                  or "nothing"))
    assert edge.label_text() == expected
    assert "shares" in expected and "/" not in expected
    legend = window.perm_legend
    assert legend.isVisible()
    assert "unchanged-write" in legend.label.text() and "write-unchanged" in legend.label.text()
    assert window.view.viewport().geometry().contains(legend.geometry())
    # the labels' layer is above the cards'
    labels = window.scene.edge_layer.labels
    assert labels.zValue() > NODE_Z >= window.scene.card_layer.zValue()
    # put a card under the label: its plate is painted over the card
    cx, cy = edge.xy_at(0.5)
    card = window.scene.nodes["spare"]
    window.scene.move_cards(["spare"], cx - card.px - card.width / 2,
                            cy - card.py - card.height / 2)
    cx, cy = edge.xy_at(0.5)
    if not card.scene_rect().contains(cx, cy):
        pytest.skip("the router took the link around the moved card")
    area = QRectF(cx - 4, cy - 3, 8, 6)
    image = QImage(80, 60, QImage.Format.Format_ARGB32)
    image.fill(QColor("magenta"))
    painter = QPainter(image)
    window.scene.render(painter, QRectF(0, 0, 80, 60), area)
    painter.end()
    text = QColor(window.scheme.text)
    dark = sum(1 for x in range(80) for y in range(60)
               if abs(image.pixelColor(x, y).lightness() - text.lightness()) < 40)
    assert dark > 0, "no label text drawn over the card"
    window.act_perms.trigger()
    assert not window.perm_legend.isVisible()

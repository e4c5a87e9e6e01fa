"""The graph scene: a projection of the latest GraphSnapshot, updated by diffs.

:meth:`GraphScene.show_snapshot` compares the new snapshot with the one on
screen (:meth:`GraphSnapshot.diff`) and adds, updates and removes only the
items that changed; positions of surviving nodes are kept and new nodes are
placed next to their neighbours (:func:`gui.views.layout.layout`). Nothing but
this method changes node and edge items, so the canvas always shows exactly
one snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QLineF, QPointF, QRectF, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSceneHelpEvent, QToolTip

from engine.gc_pause import gc_paused
from engine.graph.snapshot import EdgeInfo, GraphSnapshot
from gui.views import layout as layout_mod
from gui.views.cards import CardLayer
from gui.views.edges import Edge, EdgeLayer
from gui.views.items import NodeCard
from gui.views.layout import DEFAULT_GEOMETRY, Geometry, Point
from gui.views.palette import LIGHT, Scheme

EdgeKey = tuple[str, str, str]  # parent, role, child


def edge_key(e: EdgeInfo) -> EdgeKey:
    return (e.parent, e.role, e.child)


class GraphScene(QGraphicsScene):
    """Holds one :class:`NodeCard` per node of the snapshot on screen and one
    :class:`Edge` per link; the :class:`CardLayer` paints the cards, the
    :class:`EdgeLayer` the links. Which cards are selected is kept here (cards are
    not graphics items); ``selectionChanged`` is emitted when it changes, as Qt's
    scene does for its own items."""

    #: emitted after every applied snapshot with the diff (None for the first)
    snapshotShown = Signal(object)

    def __init__(self, scheme: Scheme = LIGHT, geometry: Geometry = DEFAULT_GEOMETRY,
                 parent: object | None = None) -> None:
        super().__init__(parent)
        self.scheme = scheme
        self.geometry = geometry
        self.snapshot: GraphSnapshot | None = None
        self.nodes: dict[str, NodeCard] = {}
        self.edges: dict[EdgeKey, Edge] = {}
        self.edge_layer = EdgeLayer(scheme)
        self.card_layer = CardLayer(self.nodes, scheme)
        self.edge_layer.card_at = self.card_layer.card_at
        self.addItem(self.edge_layer)
        self.addItem(self.card_layer)
        self.selectionChanged.connect(self.card_layer.selection_changed)
        self.show_permissions = False
        # No index: the scene holds two layers and, during a drag, the drag edge.
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setBackgroundBrush(scheme.color("background"))

    # -- projection -----------------------------------------------------------------
    def show_snapshot(self, snapshot: GraphSnapshot) -> None:
        """Make the scene show ``snapshot``, touching only what changed."""
        old = self.snapshot
        if old is None:
            self._build(snapshot)
            self.snapshot = snapshot
            self.snapshotShown.emit(None)
            return
        diff = old.diff(snapshot)
        if diff.empty:
            self.snapshot = snapshot
            return
        for e in diff.removed_edges:
            edge = self.edges.pop(edge_key(e), None)
            if edge is not None:
                edge.detach()
                self.edge_layer.remove(edge)
        unselected = False
        for k in diff.removed_nodes:
            node = self.nodes.pop(k, None)
            if node is not None:
                for edge in list(node.edges):
                    edge.detach()
                    self.edges.pop(edge_key(edge.info), None)
                    self.edge_layer.remove(edge)
                node.layer = None
                unselected |= node.selected
                self.card_layer.cards_moved()
        beside = self._beside(snapshot) if diff.added_nodes or diff.added_edges else None
        if diff.added_nodes:
            previous = self.positions()
            positions = layout_mod.layout(snapshot, previous, self.geometry)
            assert beside is not None
            for k in diff.added_nodes:
                self._add_node(snapshot, k, positions[k], k in beside)
            for k, old_pos in previous.items():  # made room for an inserted node
                new_pos = positions.get(k)
                if new_pos is not None and new_pos != old_pos:
                    self.nodes[k].place(*new_pos)
                    self.nodes[k].adjust_edges()
            self.card_layer.cards_moved()
        for k in diff.changed_nodes:
            self.nodes[k].set_info(snapshot.nodes[k])
        for e in diff.added_edges:
            self._add_edge(e)
        self.snapshot = snapshot
        self._update_badges(snapshot, old)
        if unselected:
            self.selectionChanged.emit()
        self.snapshotShown.emit(diff)

    def _build(self, snapshot: GraphSnapshot) -> None:
        with gc_paused():
            self._build_all(snapshot)

    def reset(self) -> None:
        """Remove every node and link (the scene shows no snapshot afterwards)."""
        self.snapshot = None
        for layer in (self.edge_layer, self.card_layer):
            self.removeItem(layer)         # kept: clear() would delete them
        self.clear()
        unselected = any(card.selected for card in self.nodes.values())
        for card in self.nodes.values():
            card.layer = None
        self.nodes.clear()
        self.edges.clear()
        self.edge_layer.clear()
        self.card_layer.cards_moved()
        self.addItem(self.edge_layer)
        self.addItem(self.card_layer)
        if unselected:
            self.selectionChanged.emit()

    def _build_all(self, snapshot: GraphSnapshot) -> None:
        self.reset()
        structure = layout_mod.analyse(snapshot)
        positions = layout_mod.full_layout(snapshot, self.geometry, structure)
        beside = set(structure.beside_of)
        for k in snapshot.nodes:
            self._add_node(snapshot, k, positions[k], k in beside)
        for e in snapshot.edges:
            self._add_edge(e, notify=False)
        self.card_layer.cards_moved()
        self.edge_layer.edge_changed(None)
        self._update_badges(snapshot, None)

    def relayout(self) -> None:
        """Lay every node out again from scratch (View → Re-layout)."""
        if self.snapshot is None:
            return
        positions = layout_mod.full_layout(self.snapshot, self.geometry)
        for k, item in self.nodes.items():
            item.place(*positions[k])
        for e in self.edges.values():
            e.adjust()
        self.card_layer.cards_moved()

    def positions(self) -> dict[str, Point]:
        return {k: (n.px, n.py) for k, n in self.nodes.items()}

    @staticmethod
    def _beside(snapshot: GraphSnapshot) -> set[str]:
        return set(layout_mod.analyse(snapshot).beside_of)

    def _add_node(self, snapshot: GraphSnapshot, key: str, pos: Point, beside: bool) -> None:
        """Add a card (the caller tells the card layer once it has added them all)."""
        card = NodeCard(snapshot.nodes[key], self.scheme, self.geometry, beside)
        card.px, card.py = pos
        card.layer = self.card_layer
        self.nodes[key] = card

    def _add_edge(self, e: EdgeInfo, notify: bool = True) -> None:
        src, dst = self.nodes.get(e.parent), self.nodes.get(e.child)
        if src is None or dst is None:
            return
        key = (e.parent, e.role, e.child)
        old = self.edges.pop(key, None)
        if old is not None:  # same link with new permissions
            old.detach()
            self.edge_layer.remove(old)
        edge = Edge(e, src, dst)
        if self.show_permissions:
            edge.set_show_perms(True)
        self.edge_layer.add(edge, notify)
        self.edges[key] = edge

    def _update_badges(self, snapshot: GraphSnapshot, old: GraphSnapshot | None) -> None:
        """Badge every node a running job holds with the job's id (and progress)."""
        badges: dict[str, str] = {}
        for key, n in snapshot.nodes.items():
            if n.kind != "block-job":
                continue
            total = n.info.get("len") or 0
            pct = f" {100 * (n.info.get('offset') or 0) // total}%" if total else ""
            for e in snapshot.children(key):
                badges.setdefault(e.child, f"{n.name}{pct}")
        stale = set()
        if old is not None:
            stale = {e.child for e in old.edges if e.parent.startswith("job:")}
        for key in stale | set(badges):
            item = self.nodes.get(key)
            if item is not None:
                item.set_job_badge(badges.get(key, ""))

    # -- presentation ---------------------------------------------------------------
    def set_scheme(self, scheme: Scheme) -> None:
        self.scheme = scheme
        self.setBackgroundBrush(scheme.color("background"))
        for node in self.nodes.values():
            node.scheme = scheme
        self.card_layer.set_scheme(scheme)
        self.edge_layer.set_scheme(scheme)
        self.update()

    def set_show_permissions(self, on: bool) -> None:
        self.show_permissions = on
        for e in self.edges.values():
            e.set_show_perms(on)

    def node_at(self, pos: QPointF) -> NodeCard | None:
        return self.card_layer.card_at(pos.x(), pos.y())

    # -- selection ------------------------------------------------------------------
    def selected_keys(self) -> list[str]:
        """Keys of the selected cards, in graph order."""
        return [k for k, card in self.nodes.items() if card.selected]

    def select(self, keys: Iterable[str], *, add: bool = False) -> None:
        """Select the cards of ``keys`` (and, with ``add``, keep the ones already
        selected); emits ``selectionChanged`` when the selection changed."""
        wanted = {k for k in keys if k in self.nodes}
        changed = False
        for k, card in self.nodes.items():
            on = k in wanted or (add and card.selected)
            if card.selected != on:
                card.selected = on
                changed = True
        if changed:
            self.selectionChanged.emit()  # the card layer listens

    def toggle_selected(self, key: str) -> None:
        card = self.nodes.get(key)
        if card is not None:
            card.selected = not card.selected
            self.selectionChanged.emit()

    def move_cards(self, keys: Iterable[str], dx: float, dy: float) -> None:
        """Move cards by (dx, dy) with their links (a mouse drag)."""
        for k in keys:
            card = self.nodes.get(k)
            if card is not None:
                card.px += dx
                card.py += dy
                card.adjust_edges()
        self.card_layer.cards_moved()

    def helpEvent(self, event: QGraphicsSceneHelpEvent) -> None:
        """A card's tooltip, built when the pointer rests on it; elsewhere Qt's own
        (the links' layer has one while a link is hovered)."""
        card = self.node_at(event.scenePos())
        if card is None:
            super().helpEvent(event)
            return
        QToolTip.showText(event.screenPos(), card.tooltip(), event.widget())
        event.accept()

    def graph_rect(self) -> QRectF:
        """Bounding rectangle of the graph with a margin (fit-to-view, export)."""
        cards = self.card_layer.cards_rect()
        if cards.isEmpty():
            return QRectF()
        return cards.adjusted(-60, -60, 60, 60)

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        super().drawBackground(painter, rect)
        lod = painter.worldTransform().m11()
        if lod < 0.5:
            return
        step = 32.0
        painter.setPen(QPen(QColor(self.scheme.grid), 1.0))
        left = int(rect.left() // step) * step
        top = int(rect.top() // step) * step
        x = left
        lines = []
        while x < rect.right():
            lines.append(QLineF(x, rect.top(), x, rect.bottom()))
            x += step
        y = top
        while y < rect.bottom():
            lines.append(QLineF(rect.left(), y, rect.right(), y))
            y += step
        painter.drawLines(lines)

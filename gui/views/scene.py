"""The graph scene: a projection of the latest GraphSnapshot, updated by diffs.

:meth:`GraphScene.show_snapshot` compares the new snapshot with the one on
screen (:meth:`GraphSnapshot.diff`) and adds, updates and removes only the
cards and links that changed. Cards that survive keep their places; new cards
are placed into free space next to their neighbours
(:func:`gui.views.layout.layout`), links are routed around the cards
(:class:`gui.views.layout.Router`), and ``cardsPlaced`` names the new cards so
the view can scroll to them. Nothing but this class changes cards and links, so
the canvas always shows exactly one snapshot — through the scene's :class:`Lens`
(folded chains, one VM, a filter), which changes the drawing, never the graph
the editor plans on (:attr:`GraphScene.snapshot` is the peer's).

Why this module is longer than most (about 570 lines): the scene is one
``QGraphicsScene`` whose invariant — it alone adds, moves and removes cards and links,
and keeps its spatial index and routes true after each change — holds only while every
change goes through its methods. The pure work is elsewhere (layout, placement, VM
groups and routing in :mod:`gui.views.layout`, the link layer in
:mod:`gui.views.edge_layer`); what is left are the steps of that one invariant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from PySide6.QtCore import QLineF, QObject, QPointF, QRect, QRectF, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSceneHelpEvent, QToolTip

from engine.gc_pause import gc_paused
from engine.graph.snapshot import EdgeInfo, GraphSnapshot
from gui.views import layout as layout_mod
from gui.views.animation import LayoutAnimation
from gui.views.cards import CardLayer
from gui.views.edge_layer import EdgeLayer
from gui.views.edges import Edge
from gui.views.frames import FrameLayer
from gui.views.layout import (
    DEFAULT_ASPECT,
    DEFAULT_GEOMETRY,
    Drawing,
    Frame,
    Geometry,
    Point,
    RectIndex,
    Router,
)
from gui.views.layout.drawing import frame_rect
from gui.views.layout.structure import analyse, vm_groups
from gui.views.lens import Lens
from gui.views.node_card import NodeCard
from gui.views.palette import LIGHT, Scheme

EdgeKey = tuple[str, str, str]  # parent, role, child


def edge_key(e: EdgeInfo) -> EdgeKey:
    return (e.parent, e.role, e.child)


class GraphScene(QGraphicsScene):
    """Holds one :class:`NodeCard` per node drawn and one :class:`Edge` per link;
    the :class:`CardLayer` paints the cards, the :class:`EdgeLayer` the links, the
    :class:`FrameLayer` the VM frames. Which cards are selected is kept here (cards
    are not graphics items); ``selectionChanged`` is emitted when it changes, as
    Qt's scene does for its own items."""

    #: emitted after every applied snapshot with the diff (None for the first)
    snapshotShown = Signal(object)
    #: keys of cards an update placed anew (not a whole new layout), to scroll to
    cardsPlaced = Signal(list)
    #: a re-layout finished (after its animation)
    relaidOut = Signal()

    def __init__(self, scheme: Scheme = LIGHT, geometry: Geometry = DEFAULT_GEOMETRY,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.scheme = scheme
        self.geometry = geometry
        #: the peer's graph (what the editor plans on) and the graph drawn
        self.snapshot: GraphSnapshot | None = None
        self.shown: GraphSnapshot | None = None
        self.lens = Lens()
        #: width / height the next full layout aims at (the view sets its own)
        self.aspect = DEFAULT_ASPECT
        self.nodes: dict[str, NodeCard] = {}
        self.edges: dict[EdgeKey, Edge] = {}
        self.frames: list[Frame] = []
        self._index: RectIndex | None = RectIndex()
        self.frame_layer = FrameLayer(scheme)
        self.edge_layer = EdgeLayer(scheme)
        self.card_layer = CardLayer(self.nodes, scheme)
        self.edge_layer.card_at = self.card_layer.card_at
        self.edge_layer.router = self._route
        self.card_layer.placed = self._card_placed
        for layer in (self.frame_layer, self.edge_layer, self.card_layer,
                      self.edge_layer.labels):
            self.addItem(layer)
        self.selectionChanged.connect(self.card_layer.selection_changed)
        self.show_permissions = False
        self.animation = LayoutAnimation(self, self)
        # No index: the scene holds three layers and, during a drag, the drag edge.
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setBackgroundBrush(scheme.color("background"))

    # -- projection -----------------------------------------------------------------
    def show_snapshot(self, snapshot: GraphSnapshot) -> None:
        """Make the scene show ``snapshot`` (through the lens), touching only what
        changed."""
        self.animation.finish()
        self.snapshot = snapshot
        self._show(self.lens.apply(snapshot))

    def set_lens(self, lens: Lens) -> None:
        """Look through another lens: the picture is laid out anew (animated)."""
        if lens == self.lens:
            return
        self.lens = lens
        if self.snapshot is None:
            return
        self.animation.finish()
        shown = lens.apply(self.snapshot)
        before = self.positions()
        self._show(shown, whole=True)
        self.animation.start(before)

    def _show(self, shown: GraphSnapshot, whole: bool = False) -> None:
        old = self.shown
        if old is None or whole:
            self._build(shown)
            self.shown = shown
            self.snapshotShown.emit(None)
            return
        diff = old.diff(shown)
        if diff.empty:
            self.shown = shown
            return
        touched: set[str] = set()   # cards whose links need routing again
        self._remove_links(diff.removed_edges, touched)
        unselected = self._remove_cards(diff.removed_nodes, touched)
        placed, moved = self._add_cards(shown, diff.added_nodes)
        for k in diff.changed_nodes:
            self.nodes[k].set_info(shown.nodes[k])
        for e in diff.added_edges:
            if self._add_edge(e) is not None:
                touched.update((e.parent, e.child))
        self.shown = shown
        self._reroute(touched | moved | set(placed), set(placed) | moved)
        if diff.added_nodes or diff.removed_nodes or diff.added_edges or diff.removed_edges:
            self._update_frames()
        self._update_badges(shown, old)
        if unselected:
            self.selectionChanged.emit()
        self.snapshotShown.emit(diff)
        if placed:
            self.cardsPlaced.emit([k for k in placed if k in self.nodes])

    def _remove_links(self, removed: Iterable[EdgeInfo], touched: set[str]) -> None:
        """Take the diff's removed links off the scene; their ends go into ``touched``."""
        for e in removed:
            edge = self.edges.pop(edge_key(e), None)
            if edge is not None:
                edge.detach()
                self.edge_layer.remove(edge)
                touched.update((e.parent, e.child))

    def _remove_cards(self, removed: Iterable[str], touched: set[str]) -> bool:
        """Take the diff's removed cards (and their links) off the scene; whether one of
        them was selected."""
        unselected = False
        for k in removed:
            node = self.nodes.pop(k, None)
            if node is not None:
                for edge in _links_at(node):
                    edge.detach()
                    self.edges.pop(edge_key(edge.info), None)
                    self.edge_layer.remove(edge)
                    touched.update((edge.info.parent, edge.info.child))
                node.layer = None
                if self._index is not None:
                    self._index.remove(k)
                unselected |= node.selected
                self.card_layer.cards_moved()
        return unselected

    def _add_cards(self, shown: GraphSnapshot,
                   added: Iterable[str]) -> tuple[list[str], set[str]]:
        """Place the diff's new cards by the incremental layout: the cards placed, and
        the cards moved to make room for them."""
        placed: list[str] = []
        moved: set[str] = set()
        added = list(added)
        if not added:
            return placed, moved
        st = analyse(shown)
        previous = self.positions()
        positions = layout_mod.layout(shown, previous, self.geometry, self.frames, self.aspect)
        for k in added:
            self._add_node(shown, k, positions[k], k in st.beside_of)
            placed.append(k)
        for k, old_pos in previous.items():  # made room for an inserted node
            new_pos = positions.get(k)
            if new_pos is not None and new_pos != old_pos:
                self.nodes[k].place(*new_pos)
                moved.add(k)
        self.card_layer.cards_moved()
        return placed, moved

    def _build(self, snapshot: GraphSnapshot) -> None:
        with gc_paused():
            self._build_all(snapshot)

    def reset(self) -> None:
        """Remove every node and link (the scene shows no snapshot afterwards)."""
        self.animation.finish()
        self.snapshot = self.shown = None
        self._clear()

    def _clear(self) -> None:
        layers = (self.frame_layer, self.edge_layer, self.card_layer, self.edge_layer.labels)
        for layer in layers:
            self.removeItem(layer)         # kept: clear() would delete them
        self.clear()
        unselected = any(card.selected for card in self.nodes.values())
        for card in self.nodes.values():
            card.layer = None
        self.nodes.clear()
        self.edges.clear()
        self._index = None
        self.edge_layer.clear()
        self.card_layer.cards_moved()
        self.frames = []
        self.frame_layer.set_frames([])
        for layer in layers:
            self.addItem(layer)
        if unselected:
            self.selectionChanged.emit()

    def _build_all(self, snapshot: GraphSnapshot) -> None:
        selected = set(self.selected_keys())
        self._clear()
        structure = layout_mod.analyse(snapshot)
        drawing = layout_mod.draw(snapshot, self.geometry, self.aspect, structure)
        beside = structure.beside_of
        for k in snapshot.nodes:
            x, y, _w, _h = drawing.rects[k]
            self._add_node(snapshot, k, (x, y), k in beside)
            if k in selected:
                self.nodes[k].selected = True
        paths = drawing.paths
        for e in snapshot.edges:
            self._add_edge(e, notify=False, route=paths.get(edge_key(e)))
        self.frames = drawing.frames
        self.frame_layer.set_frames(self.frames)
        self.card_layer.cards_moved()
        cards = self.card_layer.cards_rect()
        if cards.isEmpty():
            self.edge_layer.edge_changed(None)
        else:
            # every link of a fresh layout runs within its part, between the cards
            # (label room as the layer's own bounds leave it)
            self.edge_layer.set_extent(cards.adjusted(-220, -40, 220, 40))
        self._update_badges(snapshot, None)
        if selected:
            self.selectionChanged.emit()

    def relayout(self, animate: bool = False) -> None:
        """Lay every node out again from scratch (View → Re-layout); with
        ``animate``, the cards glide to their new places."""
        if self.shown is None:
            return
        self.animation.finish()
        before = self.positions()
        self._build(self.shown)
        if animate:
            self.animation.start(before)
        else:
            self.relaidOut.emit()

    def apply_drawing(self, drawing: Drawing) -> None:
        """Put cards, links and frames where ``drawing`` has them (the end of an
        animated re-layout)."""
        for k, (x, y, _w, _h) in drawing.rects.items():
            card = self.nodes.get(k)
            if card is not None:
                card.px, card.py = x, y
        self._index = None
        for key, edge in self.edges.items():
            route = drawing.paths.get(key)
            if route is not None:
                edge.set_route(route)
            else:
                edge.adjust()
        self.frames = list(drawing.frames)
        self.frame_layer.set_frames(self.frames)
        self.card_layer.cards_moved()

    def drawing(self) -> Drawing:
        """The picture as it is now: each card's rectangle, each link's line as
        drawn (corners rounded), the VM frames."""
        return Drawing({k: c.rect_tuple() for k, c in self.nodes.items()},
                       {k: list(e.points) for k, e in self.edges.items()},
                       list(self.frames))

    def positions(self) -> dict[str, Point]:
        return {k: (n.px, n.py) for k, n in self.nodes.items()}

    def _add_node(self, snapshot: GraphSnapshot, key: str, pos: Point, beside: bool) -> None:
        """Add a card (the caller tells the card layer once it has added them all)."""
        card = NodeCard(snapshot.nodes[key], self.scheme, self.geometry, beside)
        card.px, card.py = pos
        card.layer = self.card_layer
        self.nodes[key] = card
        if self._index is not None:
            self._index.set(key, card.rect_tuple())

    def _add_edge(self, e: EdgeInfo, notify: bool = True, route: list[Point] | None = None,
                  ) -> Edge | None:
        src, dst = self.nodes.get(e.parent), self.nodes.get(e.child)
        if src is None or dst is None:
            return None
        key = (e.parent, e.role, e.child)
        old = self.edges.pop(key, None)
        if old is not None:  # same link with new permissions
            old.detach()
            self.edge_layer.remove(old)
        edge = Edge(e, src, dst, route=route if route is not None else (
            old.route if old is not None else None))
        if self.show_permissions:
            edge.set_show_perms(True)
        self.edge_layer.add(edge, notify)
        self.edges[key] = edge
        return edge

    # -- routing --------------------------------------------------------------------
    @property
    def index(self) -> RectIndex:
        """The cards where they are, for the router (built when first needed after
        a whole new layout: a first paint routes nothing)."""
        if self._index is None:
            self._index = RectIndex({k: c.rect_tuple() for k, c in self.nodes.items()})
        return self._index

    @property
    def router(self) -> Router:
        return Router(self.index)

    def _card_placed(self, card: NodeCard) -> None:
        if self._index is not None and self.nodes.get(card.key) is card:
            self._index.set(card.key, card.rect_tuple())

    def _route(self, edge: Edge) -> list[Point]:
        """A link's path around the cards where they are now, leaving and entering
        its cards at ports spread in the order of the cards at the other ends."""
        src, dst = edge.src, edge.dst
        if src.key not in self.index.rects or dst.key not in self.index.rects:
            return edge.plain_route()
        if edge.sideways:
            return self.router.route(src.key, dst.key, sideways=True)
        return self.router.route(src.key, dst.key, out_x=self._port(src, edge, True),
                                 in_x=self._port(dst, edge, False))

    def _port(self, card: NodeCard, edge: Edge, outgoing: bool) -> float | None:
        group = [e for e in _links_at(card) if not e.sideways
                 and (e.src is card if outgoing else e.dst is card)]
        if len(group) < 2:
            return None

        def other_x(e: Edge) -> tuple[float, tuple[str, str, str]]:
            other = e.dst if outgoing else e.src
            return (other.px + other.width / 2, e.key)

        group.sort(key=other_x)
        k = len(group)
        step = min(self.geometry.port_gap, card.width * 0.8 / (k - 1))
        return card.px + card.width / 2 - step * (k - 1) / 2 + group.index(edge) * step

    def _reroute(self, cards: set[str], obstacles: set[str]) -> None:
        """Route again the links of ``cards`` and of their neighbours (their ports
        moved), and any link whose line now runs through a card of ``obstacles``."""
        edges: dict[EdgeKey, Edge] = {}
        for k in cards:
            card = self.nodes.get(k)
            if card is None:
                continue
            for e in _links_at(card):
                edges[e.key] = e
                if e.sideways:
                    continue
                # the ports at the other end are spread again: its links that way too
                end, incoming = (e.dst, True) if e.src is card else (e.src, False)
                for e2 in _links_at(end):
                    if not e2.sideways and (e2.dst is end) == incoming:
                        edges[e2.key] = e2
        for k in obstacles:
            card = self.nodes.get(k)
            if card is None:
                continue
            r = card.rect_tuple()
            for e in self.edge_layer.edges_in(QRectF(*r)):
                if e.key not in edges and k not in (e.src.key, e.dst.key) and \
                        RectIndex({k: r}).path_blocked(e.route, (), 0.0):
                    edges[e.key] = e
        for e in edges.values():
            e.adjust()

    # -- frames ---------------------------------------------------------------------
    def _update_frames(self) -> None:
        """Frames around each VM's cards, where they are now (the connected parts
        found by union-find over the links: this runs on every structural change)."""
        shown = self.shown
        if shown is None:
            return
        frames = []
        for label, keys in vm_groups(shown).items():
            rects = [self.nodes[k].rect_tuple() for k in keys if k in self.nodes]
            if rects:
                frames.append(Frame(label, frame_rect(rects, self.geometry), tuple(keys)))
        self.frames = frames
        self.frame_layer.set_frames(frames)

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
        self.frame_layer.set_scheme(scheme)
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
        """Move cards by (dx, dy) with their links (a mouse drag): the links of the
        moved cards are routed around the others, and links the moved cards now
        cover are routed around them."""
        moved = set()
        for k in keys:
            card = self.nodes.get(k)
            if card is not None:
                card.place(card.px + dx, card.py + dy)
                moved.add(k)
        self._reroute(moved, moved)
        self.card_layer.cards_moved()

    def place_near(self, key: str, x: float, y: float, among: Iterable[str] = ()) -> None:
        """Move the card of ``key`` — with the cards of ``among`` linked to it (the rest
        of a chain just opened) — so that it lands at the free place nearest (x, y),
        for an image opened "here"; their links are routed again."""
        card = self.nodes.get(key)
        shown = self.shown
        if card is None or shown is None:
            return
        pool = set(among) | {key}
        block = {key}
        stack = [key]
        while stack:
            k = stack.pop()
            for e in (*shown.children(k), *shown.parents(k)):
                for n in (e.parent, e.child):
                    if n in pool and n not in block and n in self.nodes:
                        block.add(n)
                        stack.append(n)
        rects = [self.nodes[k].rect_tuple() for k in block]
        left = min(r[0] for r in rects)
        top = min(r[1] for r in rects)
        width = max(r[0] + r[2] for r in rects) - left
        height = max(r[1] + r[3] for r in rects) - top
        others = RectIndex({k: c.rect_tuple() for k, c in self.nodes.items()
                            if k not in block})
        g = self.geometry
        step_x, step_y = g.node_w / 2 + g.col_gap / 2, g.row_gap
        # where the block's corner goes so that the card of ``key`` is at (x, y)
        bx, by = x - (card.px - left), y - (card.py - top)
        spot = others.nearest_free((bx, by, width, height), step_x, step_y,
                                   g.col_gap / 2) or (bx, by)
        dx, dy = spot[0] - left, spot[1] - top
        for k in block:
            c = self.nodes[k]
            c.place(c.px + dx, c.py + dy)
        self._reroute(block, block)
        self._update_frames()
        self.card_layer.cards_moved()

    def update_frames(self) -> None:
        """Fit the frames to their cards again (after cards were moved by hand)."""
        self._update_frames()

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
        frames = self.frame_layer.frames_rect()
        if not frames.isEmpty():
            cards = cards.united(frames)
        return cards.adjusted(-60, -60, 60, 60)

    def drawBackground(self, painter: QPainter, rect: QRectF | QRect) -> None:
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


def _links_at(card: NodeCard) -> list[Edge]:
    """The links drawn at ``card``: the card knows them as :class:`Attached` (it cannot
    import the links' module), the scene attaches only :class:`Edge` items."""
    return cast(list[Edge], card.edges)

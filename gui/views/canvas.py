"""The canvas: zoom, pan, fit, keyboard navigation and the backing-link drag gesture.

Gestures become requests (signals carrying node keys), never QMP: the main window
turns them into planner intents. While a backing link is dragged, every mouse
move asks :attr:`GraphCanvas.drop_validator` — the planner's preflight, i.e. the
engine's rules module on the snapshot on screen — whether dropping here would be
legal; the live edge turns green or red and the reason is written beside the
cursor and sent to the status bar. Releasing on a node asks for a re-point (only
when legal; a refused drop sends nothing), releasing on empty canvas asks for a
detach, Escape cancels.

Grab handles: the small circle under a format node (its backing port), or the
arrow end of an existing backing edge.

When an update places new cards, the canvas scrolls to show them — unless the user
is dragging or moving something, which a jump of the view would spoil. The scene
lays out anew for the canvas's shape (its :attr:`~GraphScene.aspect`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QGraphicsView, QWidget

from gui.views.drag_edge import DragEdgeItem
from gui.views.edges import Edge
from gui.views.scene import GraphScene

#: (parent key, target key or None for "detach") -> (allowed, reason)
DropValidator = Callable[[str, str | None], tuple[bool, str]]

GRAB_RADIUS = 14.0


@dataclass
class _Drag:
    parent: str
    original: str | None  # the current backing child, if an existing edge was grabbed
    item: DragEdgeItem
    target: str | None = None
    ok: bool | None = None
    reason: str = ""


@dataclass
class _Move:
    """Cards being moved with the mouse, and the scene point the mouse was last at."""

    keys: list[str]
    last: QPointF


class GraphCanvas(QGraphicsView):
    """A view on a :class:`GraphScene` with node-editor gestures."""

    rebaseRequested = Signal(str, str)
    detachRequested = Signal(str)
    dropRefused = Signal(str)
    statusMessage = Signal(str)
    nodeActivated = Signal(str)
    contextMenuRequested = Signal(object, object)
    viewportChanged = Signal()

    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.graph_scene = scene
        self.drop_validator: DropValidator | None = None
        self._drag: _Drag | None = None
        self._move: _Move | None = None
        self._pan_from: QPointF | None = None
        self._band_base: list[str] = []  # what stays selected under a Ctrl rubber band
        self.setRenderHints(QPainter.RenderHint.Antialiasing
                            | QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self.horizontalScrollBar().valueChanged.connect(self.viewportChanged)
        self.verticalScrollBar().valueChanged.connect(self.viewportChanged)
        self.rubberBandChanged.connect(self._rubber_band_changed)
        scene.cardsPlaced.connect(self.show_new_cards)
        self.setToolTip("")

    # -- zoom and fit -----------------------------------------------------------------
    def zoom_by(self, factor: float) -> None:
        current = self.transform().m11()
        factor = max(0.03 / current, min(4.0 / current, factor))
        self.scale(factor, factor)
        self.viewportChanged.emit()

    def zoom_level(self) -> float:
        return self.transform().m11()

    def reset_zoom(self) -> None:
        self.resetTransform()
        self.viewportChanged.emit()

    def fit(self) -> None:
        """Fit the whole graph, but never magnify beyond 100 %."""
        rect = self.graph_scene.graph_rect()
        if rect.isEmpty():
            return
        self.setSceneRect(rect.adjusted(-2000, -2000, 2000, 2000))
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom_level() > 1.0:
            self.reset_zoom()
            self.centerOn(rect.center())
        self.viewportChanged.emit()

    def update_scene_rect(self) -> None:
        rect = self.graph_scene.graph_rect()
        self.setSceneRect(rect.adjusted(-2000, -2000, 2000, 2000))

    def center_on_node(self, key: str, select: bool = True) -> bool:
        """Centre (and select) the card of ``key`` — or, for a node inside a folded
        chain, the chain's summary card; False when the node is not drawn."""
        scene = self.graph_scene
        card = scene.nodes.get(key)
        if card is None and scene.snapshot is not None:
            shown = scene.lens.shown_key(scene.snapshot, key)
            card = scene.nodes.get(shown) if shown is not None else None
            key = shown or key
        if card is None:
            return False
        if select:
            self.graph_scene.select([key])
        self.centerOn(card.scene_rect().center())
        self.viewportChanged.emit()
        return True

    def busy(self) -> bool:
        """Whether the user is dragging a link, moving cards or panning."""
        return (self._drag is not None or self._move is not None
                or self._pan_from is not None or bool(self.rubberBandRect().isValid()))

    def show_new_cards(self, keys: list[str]) -> None:
        """Scroll so that the cards an update placed are in view (not while the user
        drags or moves something)."""
        cards = [self.graph_scene.nodes[k] for k in keys if k in self.graph_scene.nodes]
        if not cards or self.busy():
            return
        self.update_scene_rect()
        area = cards[0].scene_rect()
        for card in cards[1:]:
            area = area.united(card.scene_rect())
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        if visible.contains(area):
            return
        self.ensureVisible(area, 40, 40)
        self.viewportChanged.emit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            super().wheelEvent(event)
            return
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.0015 ** delta)
        event.accept()

    # -- keyboard ---------------------------------------------------------------------
    def selected_key(self) -> str | None:
        keys = self.graph_scene.selected_keys()
        return keys[0] if keys else None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Escape and self._drag is not None:
            self._cancel_drag()
            self.statusMessage.emit("drag cancelled")
            return
        if key == Qt.Key.Key_Escape and self.graph_scene.selected_keys():
            self.graph_scene.select([])
            return
        arrows = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Right)
        if key in arrows and self.navigate(key):
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            sel = self.selected_key()
            if sel:
                self.nodeActivated.emit(sel)
                return
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.25)
            return
        if key == Qt.Key.Key_Minus:
            self.zoom_by(0.8)
            return
        super().keyPressEvent(event)

    def navigate(self, key: int) -> bool:
        """Arrow keys walk the graph: up to a parent, down to the backing (or first) child,
        left/right to the nearest node on the same row."""
        scene = self.graph_scene
        snap = scene.snapshot
        if snap is None or not scene.nodes:
            return False
        current = self.selected_key()
        target: str | None
        if current is None or current not in scene.nodes:
            target = next(iter(scene.nodes))
        elif key == Qt.Key.Key_Up:
            parents = snap.parents(current)
            target = parents[0].parent if parents else None
        elif key == Qt.Key.Key_Down:
            target = snap.backing(current) or next(
                (e.child for e in snap.children(current)), None)
        else:
            here = scene.nodes[current].scene_rect().center()
            sign = 1 if key == Qt.Key.Key_Right else -1
            best: str | None = None
            best_d = float("inf")
            for k, card in scene.nodes.items():
                c = card.scene_rect().center()
                dx = (c.x() - here.x()) * sign
                if dx <= 1:
                    continue
                d = dx + abs(c.y() - here.y()) * 3
                if d < best_d:
                    best, best_d = k, d
            target = best
        if target is None:
            return True
        self.center_on_node(target)
        self.statusMessage.emit(f"{target}")
        return True

    # -- the backing drag -------------------------------------------------------------
    def _grab_at(self, scene_pos: QPointF) -> tuple[str, str | None, QPointF] | None:
        """What a press at ``scene_pos`` grabs: (parent, current backing, start point)."""
        scene = self.graph_scene
        radius = GRAB_RADIUS / max(self.zoom_level(), 0.2)
        area = QRectF(scene_pos.x() - radius, scene_pos.y() - radius, 2 * radius, 2 * radius)
        best: tuple[float, Edge] | None = None
        for item in scene.edge_layer.edges_in(area):
            if item.info.role == "backing" and item.src.info.kind == "block-node":
                end = item.child_end()
                if (end - scene_pos).manhattanLength() > 3 * radius:
                    continue
                # several overlays of a shared base end at the same point: take the
                # edge whose last stretch passes closest to the cursor
                d = min((item.point_at(t) - scene_pos).manhattanLength()
                        for t in (0.8, 0.85, 0.9, 0.95, 1.0))
                if best is None or d < best[0]:
                    best = (d, item)
        if best is not None:
            e = best[1]
            return e.info.parent, e.info.child, e.src.bottom_port()
        for card in scene.card_layer.cards_in(area):
            if card.has_backing_port():
                port = card.backing_port_rect()
                if port.adjusted(-radius / 2, -radius / 2, radius / 2, radius / 2).contains(
                        scene_pos):
                    snap = scene.snapshot
                    current = snap.backing(card.key) if snap else None
                    return card.key, current, card.bottom_port()
        return None

    def start_drag(self, parent: str, original: str | None, start: QPointF) -> None:
        item = DragEdgeItem(start, self.graph_scene.scheme)
        self.graph_scene.addItem(item)
        self._drag = _Drag(parent, original, item)
        edge = self.graph_scene.edges.get((parent, "backing", original or ""))
        if edge is not None:
            edge.set_dimmed(True)
        self.statusMessage.emit(f"re-pointing the backing link of {parent}: drop on a node, "
                                "or on empty canvas to detach (Esc cancels)")

    def _update_drag(self, scene_pos: QPointF) -> None:
        drag = self._drag
        assert drag is not None
        node = self.graph_scene.node_at(scene_pos)
        target = node.key if node is not None else None
        if target != drag.target:
            old = self.graph_scene.nodes.get(drag.target or "")
            if old is not None:
                old.drop_state = None
                old.repaint()
            drag.target = target
            drag.ok, drag.reason = self._validate(drag.parent, target, drag.original)
            if node is not None:
                node.drop_state = drag.ok
                node.repaint()
            self.statusMessage.emit(drag.reason)
        end = node.top_port() if node is not None else scene_pos
        drag.item.set_end(end, drag.ok, drag.reason)

    def _validate(self, parent: str, target: str | None, original: str | None
                  ) -> tuple[bool | None, str]:
        if target == parent:
            return False, "a node cannot back itself"
        if target is None:
            if original is None:
                return None, "drop on a node to give it a backing"
            return True, f"release to detach {parent} from {original}"
        if target == original:
            return None, f"{parent} is already backed by {target}"
        if self.drop_validator is None:
            return None, ""
        ok, reason = self.drop_validator(parent, target)
        return ok, reason or (f"release to back {parent} by {target}" if ok else "refused")

    def _cancel_drag(self) -> _Drag | None:
        drag, self._drag = self._drag, None
        if drag is None:
            return None
        self.graph_scene.removeItem(drag.item)
        for key in (drag.target,):
            node = self.graph_scene.nodes.get(key or "")
            if node is not None:
                node.drop_state = None
                node.repaint()
        edge = self.graph_scene.edges.get((drag.parent, "backing", drag.original or ""))
        if edge is not None:
            edge.set_dimmed(False)
        return drag

    def dragging(self) -> bool:
        return self._drag is not None

    def drag_reason(self) -> str:
        return self._drag.reason if self._drag else ""

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = self.mapToScene(event.position().toPoint())
        if event.button() == Qt.MouseButton.LeftButton:
            grab = self._grab_at(pos)
            if grab is not None:
                self.start_drag(*grab)
                self._update_drag(pos)
                event.accept()
                return
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton
                and event.modifiers() & Qt.KeyboardModifier.AltModifier):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            card = self.graph_scene.node_at(pos)
            if card is not None:
                self._press_on_card(card.key, pos, ctrl,
                                    event.button() == Qt.MouseButton.LeftButton)
                event.accept()
                return
            if event.button() == Qt.MouseButton.LeftButton:
                # empty canvas: a rubber band starts (Ctrl keeps the selection)
                self._band_base = self.graph_scene.selected_keys() if ctrl else []
                if not ctrl:
                    self.graph_scene.select([])
        super().mousePressEvent(event)

    def _press_on_card(self, key: str, pos: QPointF, ctrl: bool, left: bool) -> None:
        """Select as file managers do: a click selects the card alone, Ctrl+click
        toggles it; a left press on a selected card starts moving the selection."""
        scene = self.graph_scene
        if ctrl and left:
            scene.toggle_selected(key)
            return
        if not scene.nodes[key].selected:
            scene.select([key])
        if left:
            self._move = _Move(scene.selected_keys(), pos)

    def _rubber_band_changed(self, rect: QRect, start: QPointF, end: QPointF) -> None:
        if rect.isNull():
            return  # the band ended (Qt sends null values then)
        area = QRectF(start, end).normalized()
        inside = [c.key for c in self.graph_scene.card_layer.cards_in(area)]
        self.graph_scene.select([*self._band_base, *inside])

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            self._update_drag(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        if self._move is not None:
            pos = self.mapToScene(event.position().toPoint())
            delta = pos - self._move.last
            self._move.last = pos
            self.graph_scene.move_cards(self._move.keys, delta.x(), delta.y())
            event.accept()
            return
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value()
                                                    - delta.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - delta.y()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None and event.button() == Qt.MouseButton.LeftButton:
            self._update_drag(self.mapToScene(event.position().toPoint()))
            drag = self._cancel_drag()
            assert drag is not None
            self._finish_drag(drag)
            event.accept()
            return
        if self._move is not None:
            self._move = None
            self.graph_scene.update_frames()
            self.update_scene_rect()
            event.accept()
            return
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def _finish_drag(self, drag: _Drag) -> None:
        if drag.target is None:
            if drag.original is not None:
                self.detachRequested.emit(drag.parent)
            return
        if drag.target == drag.original or drag.ok is None:
            return
        if drag.ok:
            self.rebaseRequested.emit(drag.parent, drag.target)
        else:
            self.dropRefused.emit(drag.reason)
            # leave the reason on screen a moment after the drop
            self.statusMessage.emit(f"refused: {drag.reason}")

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        node = self.graph_scene.node_at(self.mapToScene(event.position().toPoint()))
        if node is not None:
            self.nodeActivated.emit(node.key)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event: object) -> None:
        pos = event.pos()  # type: ignore[attr-defined]
        node = self.graph_scene.node_at(self.mapToScene(pos))
        if node is not None and not node.selected:
            self.graph_scene.select([node.key])
        self.contextMenuRequested.emit(node.key if node else None,
                                       event.globalPos())  # type: ignore[attr-defined]

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)  # type: ignore[arg-type]
        size = self.viewport().size()
        if size.width() > 50 and size.height() > 50:
            self.graph_scene.aspect = size.width() / size.height()
        # with the view as context: the call is dropped if the view is gone by then
        QTimer.singleShot(0, self, self.viewportChanged.emit)

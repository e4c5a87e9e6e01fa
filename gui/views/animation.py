"""Cards gliding to their places after a re-layout asked for by the user.

A re-layout moves every card; jumping there loses the reader, who no longer knows
which card went where. :class:`LayoutAnimation` moves each card from where it was
to where the new layout puts it in a third of a second, links following in their
plain shape, and puts the layout's own link paths and frames in place at the end.
Large graphs (where a frame of the animation would cost more than a frame) jump.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from PySide6.QtCore import QEasingCurve, QObject, QVariantAnimation

from gui.views.layout import Drawing, Point


class Animated(Protocol):
    """What the animation moves: the scene's cards and links (the scene imports this
    module, not the other way round)."""

    @property
    def nodes(self) -> Mapping[str, Any]: ...

    @property
    def edges(self) -> Mapping[Any, Any]: ...
    card_layer: Any
    relaidOut: Any

    def drawing(self) -> Drawing: ...

    def apply_drawing(self, drawing: Drawing) -> None: ...

#: milliseconds a re-layout takes to glide
DURATION_MS = 350
#: above this many cards a re-layout jumps instead
MAX_ANIMATED = 1500


class LayoutAnimation(QObject):
    """Runs one re-layout's glide on a scene; :meth:`finish` jumps to its end."""

    def __init__(self, scene: Animated, parent: QObject) -> None:
        super().__init__(parent)
        self.scene = scene
        self._final: Drawing | None = None
        self._from: dict[str, Point] = {}
        self._anim: QVariantAnimation | None = None   # made at the first glide

    def _animation(self) -> QVariantAnimation:
        if self._anim is None:
            anim = self._anim = QVariantAnimation(self)
            anim.setStartValue(0.0)
            anim.setEndValue(1.0)
            anim.setDuration(DURATION_MS)
            anim.setEasingCurve(QEasingCurve.Type.OutCubic)
            anim.valueChanged.connect(self._step)
            anim.finished.connect(self._done)
        return self._anim

    def running(self) -> bool:
        return self._final is not None

    def start(self, before: Mapping[str, Point]) -> None:
        """The scene is laid out anew; make its cards start from ``before``."""
        scene = self.scene
        moving = {k: p for k, p in before.items()
                  if k in scene.nodes and (scene.nodes[k].px, scene.nodes[k].py) != p}
        if not moving or len(scene.nodes) > MAX_ANIMATED:
            scene.relaidOut.emit()
            return
        self._final = scene.drawing()
        self._final.paths = {k: list(e.route) for k, e in scene.edges.items()}
        self._from = dict(moving)
        self._step(0.0)
        self._animation().start()

    def _step(self, value: object) -> None:
        final = self._final
        if final is None:
            return
        t = float(value)  # type: ignore[arg-type]
        scene = self.scene
        for k, (x0, y0) in self._from.items():
            card = scene.nodes.get(k)
            rect = final.rects.get(k)
            if card is None or rect is None:
                continue
            card.px = x0 + (rect[0] - x0) * t
            card.py = y0 + (rect[1] - y0) * t
        for e in scene.edges.values():
            e.set_route(e.plain_route())
        scene.card_layer.cards_moved()

    def _done(self) -> None:
        final, self._final = self._final, None
        if final is not None:
            self.scene.apply_drawing(final)
            self.scene.relaidOut.emit()

    def finish(self) -> None:
        """Jump to the end of a glide under way (a new snapshot arrived)."""
        if self._final is not None:
            self._animation().stop()
            self._done()

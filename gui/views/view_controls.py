"""The View menu's say over what the canvas shows: fold, focus, filter, minimap.

Built once by the main window, which puts :meth:`ViewControls.install`'s actions in
its View menu and the filter field in its toolbar, and asks
:meth:`ViewControls.context_actions` for a node's context menu. Everything here
changes the scene's :class:`~gui.views.lens.Lens` (the drawing), never the graph: a
folded chain, a focused VM or a filter hides nodes from the picture, not from the
peer, and edits are still planned on the whole graph.

* **Fold chain** (Ctrl+[): the chain of layers through the selected node becomes
  one summary card; **Unfold** (Ctrl+], or double-click the summary) brings them back;
  **Fold every long chain** folds all chains of four layers or more.
* **Focus on this VM** (Ctrl+Shift+V): only what the selected node's VM uses.
* **Filter** (Ctrl+Shift+F, the field in the toolbar): ``driver:NAME``,
  ``file:TEXT``, ``job:ID``, or text found in a name, driver or file.
* **Show everything** (Ctrl+Shift+E): no folds, no focus, no filter.
* **Minimap** (Ctrl+M): shown or hidden, remembered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QObject, QSettings, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLineEdit, QMenu, QToolBar, QWidget

from engine.graph.snapshot import BLOCK_BACKEND, GraphSnapshot
from gui.views.canvas import GraphCanvas
from gui.views.lens import FOLD_PREFIX, FOLDED, Lens, chain_through, foldable_chains
from gui.views.minimap import Minimap
from gui.views.scene import GraphScene

#: chains at least this long are folded by "Fold every long chain"
LONG_CHAIN = 4


def backend_over(snapshot: GraphSnapshot, key: str) -> str | None:
    """The block backend (VM drive) that uses ``key``, if any."""
    seen: set[str] = set()
    stack = [key]
    while stack:
        k = stack.pop()
        if k in seen or k not in snapshot.nodes:
            continue
        seen.add(k)
        if snapshot.nodes[k].kind == BLOCK_BACKEND:
            return k
        stack.extend(e.parent for e in snapshot.parents(k))
    return None


class ViewControls(QObject):
    """Actions and the filter field that set the scene's lens."""

    def __init__(self, scene: GraphScene, canvas: GraphCanvas, minimap: Minimap,
                 settings: QSettings, parent: QWidget,
                 say: Callable[[str], None] = lambda _text: None) -> None:
        super().__init__(parent)
        self.scene, self.canvas, self.minimap = scene, canvas, minimap
        self.settings = settings
        self.say = say

        def action(text: str, slot: Callable[[], object], keys: str | None,
                   tip: str, checkable: bool = False) -> QAction:
            act = QAction(text, parent)
            if keys:
                act.setShortcut(QKeySequence(keys))
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({keys})" if keys else tip)
            act.setCheckable(checkable)
            act.triggered.connect(lambda _checked=False: slot())
            parent.addAction(act)
            return act

        self.act_fold = action("F&old chain", self.fold_selected, "Ctrl+[",
                               "Show the selected node's chain of layers as one card")
        self.act_unfold = action("&Unfold chain", self.unfold_selected, "Ctrl+]",
                                 "Show the layers of the selected folded chain again")
        self.act_fold_long = action("Fold every &long chain", self.fold_long, None,
                                    f"Fold every chain of {LONG_CHAIN} layers or more")
        self.act_focus = action("Focus on this &VM", self.focus_selected, "Ctrl+Shift+V",
                                "Show only what the selected node's VM uses")
        self.act_filter = action("F&ilter…", self.focus_filter, "Ctrl+Shift+F",
                                 "Show only nodes of a driver, a file or a job")
        self.act_everything = action("Show &everything", self.show_everything,
                                     "Ctrl+Shift+E", "No folded chains, focus or filter")
        self.act_minimap = action("&Minimap", self.set_minimap_from_action, "Ctrl+M",
                                  "Show the overview of the whole graph", checkable=True)
        shown = bool(settings.value("minimap", True, type=bool))
        self.act_minimap.setChecked(shown)
        minimap.setVisible(shown)
        self.filter_field = QLineEdit()
        self.filter_field.setPlaceholderText("Filter: driver:qcow2 · file:vm3 · job:ID")
        self.filter_field.setClearButtonEnabled(True)
        self.filter_field.setMaximumWidth(260)
        self.filter_field.setToolTip("Show only matching nodes (Ctrl+Shift+F): driver:NAME, "
                                     "file:TEXT, job:ID, or any text in a name, driver or file")
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(300)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter_field.textChanged.connect(lambda _t: self._filter_timer.start())
        self.filter_field.returnPressed.connect(self._apply_filter)
        self._fit_pending = False
        scene.relaidOut.connect(self._relaid_out)
        scene.selectionChanged.connect(self.update_actions)
        scene.snapshotShown.connect(lambda _d: self.update_actions())
        self.update_actions()

    # -- installation -------------------------------------------------------------------
    def install(self, menu: QMenu, toolbar: QToolBar | None = None) -> None:
        """Add the actions to ``menu`` (and the filter field to ``toolbar``)."""
        menu.addSeparator()
        for act in (self.act_fold, self.act_unfold, self.act_fold_long, None, self.act_focus,
                    self.act_filter, self.act_everything, None, self.act_minimap):
            menu.addSeparator() if act is None else menu.addAction(act)
        if toolbar is not None:
            toolbar.addWidget(self.filter_field)

    def context_actions(self, key: str | None) -> list[QAction]:
        """The actions a node's context menu offers for ``key`` (a card's key)."""
        if key is None:
            return [self.act_everything] if self.scene.lens.active else []
        if key.startswith(FOLD_PREFIX):
            return [self.act_unfold, self.act_focus]
        return [self.act_fold, self.act_focus]

    def activate(self, key: str) -> bool:
        """A double-click on ``key``: unfolds a folded chain (True), else nothing."""
        if key.startswith(FOLD_PREFIX) and key in self.scene.nodes:
            self.unfold(key)
            return True
        return False

    # -- the lens -----------------------------------------------------------------------
    def _selected(self) -> str | None:
        keys = self.scene.selected_keys()
        return keys[0] if keys else None

    def _set(self, lens: Lens, what: str) -> None:
        if lens == self.scene.lens:
            return
        self._fit_pending = True
        self.scene.set_lens(lens)
        snap = self.scene.snapshot
        total = len(snap.nodes) if snap is not None else 0
        hidden = "" if not lens.active else (
            f" — {len(self.scene.nodes)} cards for {total} nodes; "
            "View → Show everything (Ctrl+Shift+E) to see them all")
        self.say(what + hidden)
        self.update_actions()

    def _relaid_out(self) -> None:
        """The picture changed because the lens did: show all of it."""
        if self._fit_pending:
            self._fit_pending = False
            self.canvas.fit()

    def fold(self, key: str) -> bool:
        snap = self.scene.snapshot
        if snap is None:
            return False
        chain = chain_through(snap, key)
        if len(chain) < 2:
            self.say(f"{key} is not in a chain of layers that can be folded")
            return False
        lens = self.scene.lens
        self._set(dataclasses.replace(lens, folded=lens.folded | {chain[0]}),
                  f"folded {len(chain)} layers under {chain[0]}")
        return True

    def unfold(self, key: str) -> None:
        top = key.removeprefix(FOLD_PREFIX)
        lens = self.scene.lens
        self._set(dataclasses.replace(lens, folded=lens.folded - {top}),
                  f"unfolded the chain under {top}")

    def fold_selected(self) -> None:
        key = self._selected()
        if key is not None:
            self.fold(key)

    def unfold_selected(self) -> None:
        key = self._selected()
        if key is not None and key.startswith(FOLD_PREFIX):
            self.unfold(key)

    def fold_long(self) -> None:
        snap = self.scene.snapshot
        if snap is None:
            return
        tops = foldable_chains(snap, LONG_CHAIN)
        lens = self.scene.lens
        self._set(dataclasses.replace(lens, folded=lens.folded | set(tops)),
                  f"folded {len(tops)} chains of {LONG_CHAIN} layers or more")

    def focus(self, key: str) -> bool:
        snap = self.scene.snapshot
        if snap is None:
            return False
        card = self.scene.nodes.get(key)
        real = key
        if card is not None and card.info.kind == FOLDED:
            real = str(card.info.info.get("layers", [key])[0])
        backend = backend_over(snap, real)
        if backend is None:
            self.say(f"no VM uses {key}")
            return False
        self._set(dataclasses.replace(self.scene.lens, focus=backend),
                  f"focus on {snap.nodes[backend].name or backend}")
        return True

    def focus_selected(self) -> None:
        key = self._selected()
        if key is not None:
            self.focus(key)

    def focus_filter(self) -> None:
        self.filter_field.setFocus()
        self.filter_field.selectAll()

    def set_filter(self, text: str) -> None:
        if self.filter_field.text() != text:
            self.filter_field.setText(text)
        self._apply_filter()

    def _apply_filter(self) -> None:
        self._filter_timer.stop()
        text = self.filter_field.text().strip()
        if text == self.scene.lens.filter:
            return
        self._set(dataclasses.replace(self.scene.lens, filter=text),
                  f"filter: {text}" if text else "filter cleared")

    def show_everything(self) -> None:
        self.filter_field.blockSignals(True)
        self.filter_field.clear()
        self.filter_field.blockSignals(False)
        self._set(Lens(), "showing everything")

    # -- minimap and enabled states -----------------------------------------------------
    def set_minimap_from_action(self) -> None:
        self.set_minimap(self.act_minimap.isChecked())

    def set_minimap(self, on: bool) -> None:
        self.act_minimap.setChecked(on)
        self.minimap.setVisible(on)
        if on:
            self.minimap.rebuild()
        self.settings.setValue("minimap", on)

    def update_actions(self) -> None:
        key = self._selected()
        snap = self.scene.snapshot
        folded = key is not None and key.startswith(FOLD_PREFIX)
        self.act_fold.setEnabled(bool(key and snap is not None and not folded
                                      and len(chain_through(snap, key)) >= 2))
        self.act_unfold.setEnabled(folded)
        self.act_focus.setEnabled(key is not None)
        self.act_fold_long.setEnabled(snap is not None)
        self.act_everything.setEnabled(self.scene.lens.active)

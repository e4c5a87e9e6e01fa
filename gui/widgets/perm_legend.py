"""The legend of the links' permission labels, over the canvas while they are shown.

View → Show permissions labels every link "takes … · shares …": what the parent holds
on its child, and what it lets other parents hold at the same time (QEMU's ``perm`` and
``shared-perm``). The words are QEMU's permissions, some shortened; this legend says
which is which, so the labels need no knowledge of QEMU's source to be read.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from gui.views.edges import PERM_WORDS

_MEANING = {
    "consistent-read": "reads return what was written (consistent-read)",
    "write": "may write",
    "write-unchanged": "writes that leave the data as it is (write-unchanged)",
    "resize": "may change the size",
    "graph-mod": "may change the graph under it (graph-mod)",
}


class PermissionLegend(QFrame):
    """A small framed legend (hidden until the permissions are shown)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("permLegend")
        self.setStyleSheet("#permLegend { background: palette(base); border: 1px solid "
                           "palette(mid); border-radius: 6px; }")
        rows = "".join(f"<tr><td><b>{PERM_WORDS[p]}</b></td><td>{text}</td></tr>"
                       for p, text in _MEANING.items())
        self.label = QLabel(
            "<b>Link labels</b><br><i>takes</i>: what the parent holds on the child · "
            "<i>shares</i>: what it lets other parents hold too<table cellspacing=3>"
            f"{rows}</table>")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.label)
        self.adjustSize()
        self.hide()

"""Connect to…: what this host offers (libvirt URIs with their domains, QMP monitors),
each with its one-line description, and a field for any other address.

The offers are :func:`gui.discovery.listing.discover`'s, the same as ``blockgraph
--list`` prints; the window finds them (off the GUI thread: it probes sockets) and
hands them over. Offers nobody can open now (a busy monitor, a libvirt connection that
refused) are listed, greyed, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.discovery.listing import Offer

ADDRESS = Qt.ItemDataRole.UserRole


class DiscoverDialog(QDialog):
    """Pick an offer, or type an address (see the module)."""

    def __init__(self, offers: Sequence[Offer], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to…")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("What this host offers — libvirt connections and their "
                                "domains, QEMU monitors:"))
        self.offers = QListWidget()
        self.offers.setMinimumSize(560, 260)
        for offer in offers:
            item = QListWidgetItem(f"{offer.address}    {offer.description.strip()}")
            item.setData(ADDRESS, offer.address)
            item.setToolTip(offer.description.strip())
            if not offer.usable:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.offers.addItem(item)
        if not offers:
            self.offers.addItem("nothing found: no libvirt connection, no QMP monitor")
            self.offers.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
        layout.addWidget(self.offers)
        layout.addWidget(QLabel("Or an address: qemu:///system, qemu+ssh://HOST/system, "
                                "unix:/path/to/qmp.sock"))
        self.typed = QLineEdit()
        layout.addWidget(self.typed)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.offers.currentItemChanged.connect(self._picked)
        self.offers.itemDoubleClicked.connect(lambda _i: self.accept())

    def _picked(self, item: QListWidgetItem | None, _old: QListWidgetItem | None) -> None:
        if item is not None and item.data(ADDRESS):
            self.typed.setText(str(item.data(ADDRESS)))

    def address(self) -> str:
        return self.typed.text().strip()

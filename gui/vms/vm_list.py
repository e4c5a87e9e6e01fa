"""The VM list: one group per connection (host), a row per VM with its status.

Rows are keyed by the VM's address (``qemu:///system#vm1``, what ``--connect`` takes).
The check box shows or hides the VM's frame; a click focuses it; the status column says
running, paused or shut off, and the jobs QEMU runs for it (``commit ready``,
``stream 40%``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

ADDRESS = Qt.ItemDataRole.UserRole


class VmList(QTreeWidget):
    """Connections and their VMs (see the module)."""

    #: (address, shown) — the user ticked or unticked a VM
    visibilityChanged = Signal(str, bool)
    #: address — the user picked a VM to look at
    focusRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["VM", "Status"])
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.header().setStretchLastSection(True)
        self.setColumnWidth(0, 150)
        self.groups: dict[str, QTreeWidgetItem] = {}
        self.rows: dict[str, QTreeWidgetItem] = {}
        self.itemChanged.connect(self._item_changed)
        self.itemClicked.connect(self._item_clicked)

    def set_group(self, group: str, description: str = "") -> QTreeWidgetItem:
        """The group row of connection ``group`` (made on first use)."""
        item = self.groups.get(group)
        if item is None:
            item = QTreeWidgetItem([group])
            bold = QFont(item.font(0))
            bold.setBold(True)
            item.setFont(0, bold)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.addTopLevelItem(item)
            item.setFirstColumnSpanned(True)    # a host's URI is long: the whole row
            item.setExpanded(True)
            self.groups[group] = item
        item.setText(0, f"{group} — {description}" if description else group)
        item.setToolTip(0, item.text(0))
        return item

    def set_vm(self, group: str, address: str, name: str, status: str) -> QTreeWidgetItem:
        """Add or update VM ``address`` under ``group``; new rows start shown."""
        item = self.rows.get(address)
        if item is None:
            item = QTreeWidgetItem([name, status])
            item.setData(0, ADDRESS, address)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                          | Qt.ItemFlag.ItemIsUserCheckable)
            self.blockSignals(True)
            item.setCheckState(0, Qt.CheckState.Checked)
            self.blockSignals(False)
            self.set_group(group).addChild(item)
            self.rows[address] = item
        elif item.text(1) != status:
            item.setText(1, status)
        item.setToolTip(0, address)
        item.setToolTip(1, status)
        return item

    def remove_vm(self, address: str) -> None:
        item = self.rows.pop(address, None)
        parent = item.parent() if item is not None else None
        if item is not None and parent is not None:
            parent.removeChild(item)

    def status(self, address: str) -> str:
        return self.rows[address].text(1)

    def is_shown(self, address: str) -> bool:
        return self.rows[address].checkState(0) == Qt.CheckState.Checked

    def set_shown(self, address: str, shown: bool) -> None:
        self.rows[address].setCheckState(0, Qt.CheckState.Checked if shown
                                         else Qt.CheckState.Unchecked)

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        address = item.data(0, ADDRESS)
        if address and column == 0:
            self.visibilityChanged.emit(address, item.checkState(0) == Qt.CheckState.Checked)

    def _item_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        address = item.data(0, ADDRESS)
        if address:
            self.focusRequested.emit(address)

"""What the editor window says about its state: the status bar and the banner.

The status bar holds the last message, the last error (until something succeeds or
the connection changes), the options of an opened command line that the graph does not
model, the peer's version and the connection state; the first two elide to the room
they have, their whole text in the tooltip. The banner is the strip over the canvas for
the disconnected state, with a Reconnect button.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QStatusBar, QWidget

from gui.session import ConnectionState, ConnectionStatus
from gui.widgets.status import ElidedLabel


class Banner(QFrame):
    """A strip over the canvas for the disconnected state, with a Reconnect button."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.button = QPushButton("Reconnect")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        self.setStyleSheet("#banner { background: #c62828; border-radius: 6px; }"
                           "#banner QLabel { color: white; font-weight: bold; }")
        self.hide()


_CONNECTION_TEXT = {ConnectionStatus.CONNECTED: "● connected",
                    ConnectionStatus.CONNECTING: "◌ connecting…",
                    ConnectionStatus.LOST: "○ disconnected",
                    ConnectionStatus.DISCONNECTED: "○ not connected",
                    ConnectionStatus.CLOSED: "○ closed"}


class StatusLine:
    """The labels of the window's status bar and what each says."""

    def __init__(self, bar: QStatusBar) -> None:
        self.conn_label = QLabel()
        self.peer_label = QLabel()
        self.error_label = ElidedLabel(minimum=80)
        self.error_label.setStyleSheet("color: #c62828;")
        self.message_label = ElidedLabel()
        self.unmodelled_label = QLabel()
        self.unmodelled_label.setStyleSheet("color: #8d6e00;")
        bar.addWidget(self.message_label, 3)
        bar.addWidget(self.error_label, 2)
        bar.addPermanentWidget(self.unmodelled_label)
        bar.addPermanentWidget(self.peer_label)
        bar.addPermanentWidget(self.conn_label)

    def show_message(self, text: str) -> None:
        self.message_label.setText(text)

    def show_unmodelled(self, options: list[str]) -> None:
        self.unmodelled_label.setText(f"{len(options)} option{'s' if len(options) != 1 else ''}"
                                      " not modelled" if options else "")
        self.unmodelled_label.setToolTip("Not modelled by blockgraph:\n" + "\n".join(options))

    def show_error(self, text: str) -> None:
        """The last error, said once: in the error label (whole text in its tooltip);
        the message beside it no longer says what was running."""
        self.error_label.setText(text)
        self.message_label.setText("")

    def clear_error(self) -> None:
        self.error_label.setText("")

    def show_connection(self, state: ConnectionState) -> None:
        """The connection's state and address, coloured, and the peer's version."""
        status = state.status
        where = f" — {state.address}" if state.address else ""
        self.conn_label.setText(_CONNECTION_TEXT[status] + where)
        self.conn_label.setToolTip(state.message)
        color = {"connected": "#1f9d55", "connecting": "#c9761a"}.get(status.value, "#c62828")
        self.conn_label.setStyleSheet(f"color: {color}; font-weight: bold;")
        if state.peer is not None:
            self.peer_label.setText(f"QEMU {state.peer.version_text}")

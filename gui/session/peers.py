"""Where a session connects: the bundled engine in-process, or a remote QEMU address.

The bundled engine is served over QMP on an in-process socket pair
(:mod:`engine.server.inprocess`) and reached through the same session code as a
remote QEMU; this module only builds the :class:`~gui.session.address.Endpoint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.server.inprocess import InProcessServer
from gui.session.address import Endpoint, parse_address, socket_endpoint

BUNDLED_LABEL = "bundled engine"


class BundledPeer:
    """The bundled engine on a private thread, and the endpoint that reaches it."""

    def __init__(self, root: Path | None = None, engine: Any | None = None) -> None:
        """``engine``: one already built (e.g. from a QEMU command line) instead of a
        new, empty one; it is closed with the peer."""
        self.server = InProcessServer(engine, root=root)
        self.endpoint: Endpoint = socket_endpoint(BUNDLED_LABEL, self.server.connect)

    def close(self) -> None:
        self.server.close()


def remote_endpoint(address: str) -> Endpoint:
    """``unix:PATH`` / ``tcp:HOST:PORT`` / a socket path; ValueError explains bad input."""
    return parse_address(address)

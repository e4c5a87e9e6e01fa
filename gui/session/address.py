"""Where a session connects: an address string or a socket factory.

Address strings are the ones the command line takes: ``unix:PATH``, ``tcp:HOST:PORT``
(``tcp:[::1]:4444`` for IPv6), or a bare path (a unix socket). The bundled engine is not
special: it is reached through a *socket factory* — a callable returning a connected
socket (one end of an in-process socket pair) — and spoken to with the same QMP client.
A factory is called again on every reconnect.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

SocketFactory = Callable[[], socket.socket]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A QMP peer: ``target`` is a unix path, a ``(host, port)`` tuple, or a factory."""

    label: str
    target: str | tuple[str, int] | SocketFactory

    def connect_argument(self) -> str | tuple[str, int] | socket.socket:
        """What ``QMPClient.connect`` takes; a factory is called for a fresh socket."""
        if callable(self.target):
            return self.target()
        return self.target


def parse_address(address: str) -> Endpoint:
    """Parse ``unix:PATH``, ``tcp:HOST:PORT`` or a bare unix socket path.

    >>> parse_address("tcp:localhost:4444").target
    ('localhost', 4444)
    """
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if not path:
            raise ValueError(f"missing socket path in address {address!r}")
        return Endpoint(address, path)
    if address.startswith("tcp:"):
        rest = address[len("tcp:"):]
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"address {address!r} is not tcp:HOST:PORT")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return Endpoint(address, (host, int(port)))
    if ":" in address.split("/", 1)[0]:
        raise ValueError(f"unknown address scheme in {address!r} (use unix:PATH or tcp:HOST:PORT)")
    if not address:
        raise ValueError("empty address")
    return Endpoint(f"unix:{address}", address)


def socket_endpoint(label: str, factory: SocketFactory) -> Endpoint:
    """An endpoint whose connections come from ``factory`` (e.g. the in-process engine)."""
    return Endpoint(label, factory)

"""The bundled engine served over QMP (``blockgraph serve`` and in-process).

Layers, each its own module:

* :mod:`~engine.server.wire` — messages as the bytes QEMU writes (line format, member
  order, escapes, number format);
* :mod:`~engine.server.jsonstream` — QEMU's JSON stream framing and parser, with its
  error texts, recovery and limits;
* :mod:`~engine.server.protocol` — one connection's QMP rules (checks, negotiation,
  ``id`` echo, errors), no I/O;
* :mod:`~engine.server.server` — asyncio transport: unix sockets, TCP, socket pairs,
  events to every negotiated client, ``quit``;
* :mod:`~engine.server.inprocess` — the server on its own thread for in-process use;
* :mod:`~engine.server.cli` — ``blockgraph serve``.

Nothing here imports Qt.
"""

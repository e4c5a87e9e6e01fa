"""Node I/O: every node reads and writes through its *current* children, as in QEMU.

Each block node owns one :class:`~engine.graph.io.base.NodeIO` made by its driver
(see :mod:`engine.graph.drivers`): protocol drivers at the bottom
(:mod:`~engine.graph.io.protocol`: ``file``, ``null-co``), format drivers that
interpret their ``file`` child and fall through to their ``backing`` child
(:mod:`~engine.graph.io.formats`: ``qcow2``, ``raw``), and filters that pass requests
to their one child (:mod:`~engine.graph.io.filters`). A request looks its children up
when the graph changed since the last one (:class:`~engine.graph.io.base.IOContext`
counts changes), so a ``blockdev-reopen`` that re-links a child changes the path of
the next request and nothing else needs to know.
"""

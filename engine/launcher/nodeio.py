"""Guest reads and writes through a node of the live graph, as a VM's device makes them.

Every node has its driver instance (``node.io``, :mod:`engine.graph.io`) that reads
and writes through the node's current children; this module is the thin face the
human monitor's ``qemu-io`` uses.
"""

from __future__ import annotations

from engine.graph.model import Node


class NodeIOError(OSError):
    """A request the node cannot serve (the errno says why, as QEMU's would)."""


def _io(node: Node) -> object:
    if node.io is None:
        raise NodeIOError(5, f"node '{node.name}' cannot be read by the engine")
    return node.io


def node_length(node: Node) -> int:
    """The node's guest size."""
    return int(_io(node).length())  # type: ignore[attr-defined]


def read(node: Node, offset: int, length: int) -> bytes:
    """``length`` guest bytes at ``offset``."""
    buf = bytearray(length)
    _io(node).readinto(offset, memoryview(buf))  # type: ignore[attr-defined]
    return bytes(buf)


def write(node: Node, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` through the node."""
    _io(node).write(offset, data)  # type: ignore[attr-defined]


def write_zeroes(node: Node, offset: int, length: int, *, unmap: bool = False) -> None:
    """Make ``[offset, offset+length)`` read as zeros (``unmap``: storage may go)."""
    _io(node).write_zeroes(offset, length, unmap=unmap)  # type: ignore[attr-defined]


def write_compressed(node: Node, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` as a compressed write (``qemu-io write -c``)."""
    _io(node).write_compressed(offset, data)  # type: ignore[attr-defined]


def discard(node: Node, offset: int, length: int) -> None:
    """Discard ``[offset, offset+length)`` through the node (``qemu-io discard``)."""
    _io(node).discard(offset, length)  # type: ignore[attr-defined]

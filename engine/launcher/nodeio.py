"""Guest reads and writes through a node of the live graph, as a VM's device makes them.

A format node with an image (qcow2, raw on a file) reads its own layer and, for what
it does not define, what its ``backing`` child shows; a ``null-co``/``null-aio`` node
reads zeros (so does a chain ending in a node without an image); a node with only a ``file`` child (a raw pass-through with offset, or a
filter) forwards to it. Writes go to the node's own image; a qcow2 layer copies what
lies below it from the graph's backing chain, not from the file named in its header.
"""

from __future__ import annotations

from engine.formats import ChainReader
from engine.graph.model import Node


class NodeIOError(OSError):
    """A request the node cannot serve (the errno says why, as QEMU's would)."""


def node_length(node: Node) -> int:
    """The node's guest size."""
    if node.image is not None:
        return int(node.image.virtual_size)
    if node.size is not None:
        return node.size
    child = node.file
    return node_length(child) if child is not None else 0


def _layers(node: Node) -> list[Node]:
    layers = []
    here: Node | None = node
    while here is not None and here.image is not None:
        layers.append(here)
        here = here.backing if here.driver == "qcow2" else None
    return layers


def read(node: Node, offset: int, length: int) -> bytes:
    """``length`` guest bytes at ``offset``."""
    if node.driver in ("null-co", "null-aio"):
        return bytes(length)
    if node.image is None:
        child = node.file
        if child is None:
            raise NodeIOError(5, "no medium")
        return read(child, offset + int(node.options.get("offset", 0)), length)
    return ChainReader([n.image for n in _layers(node)]).read(offset, length)


def write(node: Node, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` into the node's own layer."""
    if node.driver in ("null-co", "null-aio"):
        return
    if node.image is None:
        child = node.file
        if child is None:
            raise NodeIOError(5, "no medium")
        write(child, offset + int(node.options.get("offset", 0)), data)
        return
    _prepare_cow(node)
    node.image.write(offset, data)
    node.image.flush()


def write_zeroes(node: Node, offset: int, length: int) -> None:
    """Make ``[offset, offset+length)`` read as zeros."""
    if node.driver in ("null-co", "null-aio"):
        return
    if node.image is None:
        child = node.file
        if child is None:
            raise NodeIOError(5, "no medium")
        write_zeroes(child, offset + int(node.options.get("offset", 0)), length)
        return
    _prepare_cow(node)
    node.image.write_zeroes(offset, length)
    node.image.flush()


def _prepare_cow(node: Node) -> None:
    if node.driver != "qcow2":
        return
    backing = node.backing
    if backing is None:
        node.image.backing_reader = None
        return

    def fill(offset: int, view: memoryview) -> None:
        size = node_length(backing)
        inside = max(0, min(len(view), size - offset))
        if inside:
            view[:inside] = read(backing, offset, inside)
        if inside < len(view):
            view[inside:] = bytes(len(view) - inside)

    node.image.backing_reader = fill

"""Guest reads and writes through a node of the live graph, as a VM's device makes them.

A qcow2 node reads its own layer and, for what it does not define, what its
``backing`` chain shows; a ``raw`` node passes requests to its ``file`` child (with
its ``offset``, as reopened), a ``file`` node to its host file; a ``null-co`` or
``null-aio`` node reads zeros; any other node with a ``file`` child forwards to it.
Writes go to the node's own layer; a qcow2 layer copies what lies below it from the
graph's backing chain, not from the file named in its header.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from engine.graph.model import Node


class NodeIOError(OSError):
    """A request the node cannot serve (the errno says why, as QEMU's would)."""


def node_length(node: Node) -> int:
    """The node's guest size."""
    if node.driver == "file" and node.host_path is not None:
        return os.stat(node.host_path).st_size
    if node.driver == "raw":
        child = node.file
        below = node_length(child) if child is not None else 0
        offset = int(node.options.get("offset", 0))
        return int(node.options.get("size", max(below - offset, 0)))
    if node.image is not None:
        return int(node.image.virtual_size)
    if node.size is not None:
        return node.size
    child = node.file
    return node_length(child) if child is not None else 0


def read(node: Node, offset: int, length: int) -> bytes:
    """``length`` guest bytes at ``offset``."""
    if node.driver in ("null-co", "null-aio"):
        return bytes(length)
    if node.driver == "file" and node.host_path is not None:
        return _host_read(node.host_path, offset, length)
    if node.driver == "raw" or node.image is None:
        child = node.file
        if child is None:
            raise NodeIOError(5, "no medium")
        return read(child, offset + int(node.options.get("offset", 0)), length)
    node.image.check_request(offset, length)
    buf = bytearray(length)
    node.image.readinto(offset, memoryview(buf), _backing_fill(node), prezeroed=True)
    return bytes(buf)


def write(node: Node, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` into the node's own layer."""
    if node.driver in ("null-co", "null-aio"):
        return
    if node.driver == "file" and node.host_path is not None:
        _host_write(node.host_path, offset, data)
        return
    if node.driver == "raw" or node.image is None:
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
    if node.driver == "file" and node.host_path is not None:
        _host_write(node.host_path, offset, bytes(length))
        return
    if node.driver == "raw" or node.image is None:
        child = node.file
        if child is None:
            raise NodeIOError(5, "no medium")
        write_zeroes(child, offset + int(node.options.get("offset", 0)), length)
        return
    _prepare_cow(node)
    node.image.write_zeroes(offset, length)
    node.image.flush()


def _prepare_cow(node: Node) -> None:
    if node.driver == "qcow2":
        node.image.backing_reader = _backing_fill(node)


def _backing_fill(node: Node) -> Callable[[int, memoryview], None] | None:
    """What a qcow2 node sees below itself: its backing child in the graph, zeros
    past that child's end (None: no backing, unallocated reads zeros)."""
    backing = node.backing if node.driver == "qcow2" else None
    if backing is None:
        return None

    def fill(offset: int, view: memoryview) -> None:
        size = node_length(backing)
        inside = max(0, min(len(view), size - offset))
        if inside:
            view[:inside] = read(backing, offset, inside)
        if inside < len(view):
            view[inside:] = bytes(len(view) - inside)

    return fill


def _host_read(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    return data + bytes(length - len(data))     # past the end of file: zeros


def _host_write(path: str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)

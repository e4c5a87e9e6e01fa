"""Refcount entries of every width (1..64 bits) and the in-memory refcount state.

Entries of 8 bits and wider are big-endian integers. Narrower ones are packed
from the least significant bit of each byte: entry *i* sits at bit
``(i * bits) % 8`` of byte ``(i * bits) // 8``.
"""

from __future__ import annotations


def get_refcount(block: bytearray | bytes, index: int, bits: int) -> int:
    if bits >= 8:
        width = bits >> 3
        start = index * width
        return int.from_bytes(block[start:start + width], "big")
    bitpos = index * bits
    return (block[bitpos >> 3] >> (bitpos & 7)) & ((1 << bits) - 1)


def set_refcount(block: bytearray, index: int, value: int, bits: int) -> None:
    if bits >= 8:
        width = bits >> 3
        start = index * width
        block[start:start + width] = value.to_bytes(width, "big")
        return
    bitpos = index * bits
    shift = bitpos & 7
    mask = ((1 << bits) - 1) << shift
    byte = bitpos >> 3
    block[byte] = (block[byte] & ~mask) | ((value << shift) & mask)


def fill_refcounts(block: bytearray, first: int, count: int, value: int, bits: int) -> None:
    """Set ``count`` consecutive entries from ``first`` to ``value``."""
    if bits >= 8 and count > 8:
        width = bits >> 3
        block[first * width:(first + count) * width] = value.to_bytes(width, "big") * count
        return
    for i in range(first, first + count):
        set_refcount(block, i, value, bits)


def first_free(block: bytearray | bytes, first: int, stop: int, bits: int) -> int | None:
    """The first entry in ``[first, stop)`` whose refcount is zero, if any (a byte
    search for entries of whole bytes: allocation looks for free clusters from the
    image's start after every open)."""
    if bits >= 8:
        width = bits >> 3
        zero = bytes(width)
        pos = first * width
        end = stop * width
        while True:
            j = block.find(zero, pos, end)
            if j < 0:
                return None
            if j % width == 0:
                return j // width
            pos = j + width - j % width
    for i in range(first, stop):
        if not get_refcount(block, i, bits):
            return i
    return None

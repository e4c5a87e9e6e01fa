"""qcow2 table entries: the bit layout of L1/L2 entries and big-endian table arrays.

Shared by the reader (:mod:`engine.formats.qcow2`), the writer and the repair code,
so none of them needs another's module for these facts.
"""

from __future__ import annotations

import sys
from array import array

OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00      # bits 9..55 of L1 and standard L2 entries
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1

# kinds of guest cluster, in the order they are tested on the hot path
K_UNALLOC, K_ZERO, K_DATA, K_COMPRESSED = range(4)

_SWAP = sys.byteorder == "little"


def be_array(data: bytes | bytearray | memoryview) -> array[int]:
    """Big-endian u64s -> array('Q') in host order."""
    arr = array("Q")
    arr.frombytes(data)
    if _SWAP:
        arr.byteswap()
    return arr


def to_be(arr: array[int]) -> bytes:
    """array('Q') in host order -> big-endian bytes."""
    if not _SWAP:
        return arr.tobytes()
    out = array("Q", arr)
    out.byteswap()
    return out.tobytes()

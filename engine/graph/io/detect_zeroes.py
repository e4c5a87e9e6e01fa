"""``detect-zeroes``: which nodes turn a write of zero bytes into a zero write.

QEMU checks each node a data write enters: with ``detect-zeroes`` ``on`` or ``unmap``
and a buffer of nothing but zero bytes, the request goes on as a zero write (``unmap``
also lets storage go). Without it, zeros are data like any other.
"""

from __future__ import annotations

from typing import Any


def detects_zeroes(node: Any) -> bool:
    """Whether ``node`` was opened with ``detect-zeroes`` ``on`` or ``unmap``."""
    return getattr(node, "detect_zeroes", "off") in ("on", "unmap")


def all_zero(data: bytes | bytearray | memoryview) -> bool:
    """Whether every byte of ``data`` is zero."""
    view = memoryview(data).cast("B")
    return not any(view) if len(view) < 4096 else view == bytes(len(view))

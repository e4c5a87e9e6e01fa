"""Fixtures: a qemu-storage-daemon with a monitor for the command and one for the test."""

from tests.support.peer import peer

__all__ = ["peer"]

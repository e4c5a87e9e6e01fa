"""Fixtures: a restartable qemu-storage-daemon (``peer``) and a connected ``session``."""

from tests.support.peer import peer, session

__all__ = ["peer", "session"]

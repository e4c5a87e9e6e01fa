"""Fixtures: a restartable qemu-storage-daemon (``peer``) and a connected ``session``;
``any_peer``/``any_session`` run a test against every peer kind (daemon, bundled engine)."""

from tests.support.peer import any_peer, any_session, peer, session

__all__ = ["any_peer", "any_session", "peer", "session"]

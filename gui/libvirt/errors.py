"""libvirt's refusals, kept in libvirt's words, inside the session's one error tree.

``str(LibvirtError)`` is exactly libvirt's message (``Requested operation is not valid:
domain is not running``, ``internal error: unable to execute QEMU command
'blockdev-snapshot': …``) so the editor shows what ``virsh`` would print. ``code`` and
``domain`` are libvirt's numbers (``VIR_ERR_*``, ``VIR_FROM_*``) for callers that branch.
"""

from __future__ import annotations

from typing import Any

from gui.session.errors import SessionError


class LibvirtError(SessionError):
    """A libvirt API call failed; the message is libvirt's own."""

    def __init__(self, message: str, *, call: str = "", code: int = 0, domain: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.call = call
        self.code = code
        self.domain = domain

    @classmethod
    def from_libvirt(cls, exc: Any, call: str = "") -> LibvirtError:
        """From a ``libvirt.libvirtError`` (duck-typed: this module does not import libvirt)."""
        message = exc.get_error_message() or str(exc)
        return cls(message, call=call, code=int(exc.get_error_code() or 0),
                   domain=int(exc.get_error_domain() or 0))


class NoLibvirtApi(SessionError):
    """An edit libvirt has no API for; ``passthrough`` says whether QMP passthrough could
    send it (after a confirmation that libvirt will not know of the change)."""

    def __init__(self, message: str, *, passthrough: bool) -> None:
        super().__init__(message)
        self.passthrough = passthrough


class NotLibvirtShaped(SessionError):
    """An edit libvirt's API cannot express on this graph (a node outside every disk's
    chain, a stream into a layer that is not the active one); the text says why."""

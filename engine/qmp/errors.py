"""QMP errors as the engine raises them: the one refusal type (:mod:`engine.refusal`)
under the name QMP clients know."""

from __future__ import annotations

from engine.refusal import Refusal, command_not_found, generic

#: A command failed; ``error_class`` and ``desc`` are what QEMU would answer.
QMPError = Refusal

__all__ = ["QMPError", "command_not_found", "generic"]

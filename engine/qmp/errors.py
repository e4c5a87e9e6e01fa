"""QMP errors as the engine raises them: an error class and QEMU's exact text."""

from __future__ import annotations


class QMPError(Exception):
    """A command failed; ``error_class`` and ``desc`` are what QEMU would answer.

    The QMP server turns this into ``{"error": {"class": error_class, "desc": desc}}``.
    """

    def __init__(self, error_class: str, desc: str) -> None:
        super().__init__(desc)
        self.error_class = error_class
        self.desc = desc

    def to_qmp(self) -> dict[str, str]:
        return {"class": self.error_class, "desc": self.desc}

    def __repr__(self) -> str:
        return f"QMPError({self.error_class!r}, {self.desc!r})"


def generic(desc: str) -> QMPError:
    """The usual failure: class ``GenericError``."""
    return QMPError("GenericError", desc)


def command_not_found(name: str) -> QMPError:
    return QMPError("CommandNotFound", f"The command {name} has not been found")

"""The one refusal type: a command refused as QEMU refuses it, and QMP's standard texts.

A :class:`Refusal` carries what QEMU answers: an error class (``GenericError`` for
almost everything) and QEMU's exact text. Every layer raises it (the graph's rules as
typed subclasses, see :mod:`engine.graph.rules`), the QMP layer sends it as it is and
the editor shows its text: nothing converts one error into another on the way.

The texts QEMU's QMP core uses for any command (``QERR_*`` in QEMU) live here too, so
each is written once.
"""

from __future__ import annotations


class Refusal(Exception):
    """A refused command: ``error_class`` and ``desc`` are what QEMU would answer.

    The QMP server turns it into ``{"error": {"class": error_class, "desc": desc}}``.
    """

    error_class = "GenericError"

    def __init__(self, error_class: str, desc: str) -> None:
        super().__init__(desc)
        self.error_class = error_class
        self.desc = desc

    @property
    def text(self) -> str:
        return self.desc

    def __str__(self) -> str:
        return self.desc

    def to_qmp(self) -> dict[str, str]:
        return {"class": self.error_class, "desc": self.desc}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_class!r}, {self.desc!r})"


def generic(desc: str) -> Refusal:
    """The usual failure: class ``GenericError``."""
    return Refusal("GenericError", desc)


def command_not_found(name: str) -> Refusal:
    return Refusal("CommandNotFound", f"The command {name} has not been found")


def device_not_found(name: str) -> Refusal:
    return Refusal("DeviceNotFound", f"Device '{name}' not found")


def device_in_use(name: str | None) -> Refusal:
    """QERR_DEVICE_IN_USE (QEMU prints a missing name as ``(null)``)."""
    return generic(f"Device '{name if name is not None else '(null)'}' is in use")


def invalid_parameter_value(name: str, expected: str) -> Refusal:
    """QERR_INVALID_PARAMETER_VALUE."""
    return generic(f"Parameter '{name}' expects {expected}")


def missing_parameter(name: str) -> Refusal:
    return generic(f"Parameter '{name}' is missing")


def unexpected_parameter(name: str) -> Refusal:
    return generic(f"Parameter '{name}' is unexpected")


def invalid_parameter_type(name: str, expected: str) -> Refusal:
    return generic(f"Invalid parameter type for '{name}', expected: {expected}")


def device_has_no_medium(name: str) -> Refusal:
    return generic(f"Device '{name}' has no medium")

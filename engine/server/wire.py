"""QMP messages as the bytes QEMU writes: one line each, QEMU's spacing, QEMU's order.

QEMU 7.2 prints every message on one line ending in ``\\r\\n``, with ``": "`` after a
key and ``", "`` between members and nothing else. Object members come out in the
iteration order of QEMU's hash dictionary (the bucket rule of
:mod:`engine.qmp.qdict`), which depends on the keys and the order they were inserted.

:func:`encode` applies that rule to every plain ``dict``, taking its own iteration
order as the insertion order, so a message built the way QEMU builds it (members in
schema order) comes out exactly as QEMU would write it. Dicts that are already in
QEMU's order (:class:`engine.qmp.qdict.QEMUOrdered`, what ``qdict_sorted`` returns)
are written as they are: sorting twice would swap keys that share a bucket.

Scalars follow QEMU too: strings escape everything outside printable ASCII as
``\\uXXXX`` with upper-case hex (pairs above U+FFFF); floats use C's ``%.17g``
(``1500``, ``0.10000000000000001``, ``inf``).
"""

from __future__ import annotations

import re
from typing import Any

from engine.qmp.qdict import QEMUOrdered, qdict_order

#: Line terminator of every message QEMU sends.
EOL = b"\r\n"

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                  "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\]|[^\x20-\x7e]')
_ORDER_CACHE: dict[tuple[str, ...], list[str]] = {}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    cp = ord(ch)
    if cp > 0xFFFF:
        cp -= 0x10000
        return f"\\u{0xD800 + (cp >> 10):04X}\\u{0xDC00 + (cp & 0x3FF):04X}"
    return f"\\u{cp:04X}"


def encode_string(text: str) -> str:
    """``text`` as a QEMU JSON string literal."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def encode_float(value: float) -> str:
    """A float as QEMU prints it (C ``%.17g``; ``inf``/``-inf``/``nan`` bare)."""
    return format(value, ".17g")


def member_order(obj: dict[str, Any]) -> list[str]:
    """The keys of ``obj`` in the order QEMU writes them."""
    if isinstance(obj, QEMUOrdered):
        return list(obj)
    keys = tuple(obj)
    order = _ORDER_CACHE.get(keys)
    if order is None:
        order = qdict_order(keys)
        if len(_ORDER_CACHE) < 4096:
            _ORDER_CACHE[keys] = order
    return order


class _Raw:
    """Text to emit as is (punctuation between the values on the work stack)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_CLOSE_OBJECT, _CLOSE_ARRAY, _COMMA = _Raw("}"), _Raw("]"), _Raw(", ")


def dumps(value: Any) -> str:
    """``value`` as QEMU's JSON text (no line terminator).

    Iterative, so an echoed ``id`` nested as deep as the input limit allows (1024)
    cannot exhaust the interpreter's stack.
    """
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, str):
            out.append(encode_string(item))
        elif item is True:
            out.append("true")
        elif item is False:
            out.append("false")
        elif item is None:
            out.append("null")
        elif isinstance(item, int):
            out.append(str(int(item)))
        elif isinstance(item, float):
            out.append(encode_float(item))
        elif isinstance(item, dict):
            if not item:
                out.append("{}")
                continue
            out.append("{")
            stack.append(_CLOSE_OBJECT)
            keys = member_order(item)
            for n, key in enumerate(reversed(keys)):
                stack.append(item[key])
                prefix = "" if n == len(keys) - 1 else ", "
                stack.append(_Raw(prefix + encode_string(str(key)) + ": "))
        elif isinstance(item, list | tuple):
            if not item:
                out.append("[]")
                continue
            out.append("[")
            stack.append(_CLOSE_ARRAY)
            for n, element in enumerate(reversed(item)):
                stack.append(element)
                if n != len(item) - 1:
                    stack.append(_COMMA)
        else:
            raise TypeError(f"cannot encode {type(item).__name__} as QMP JSON")
    return "".join(out)


def encode(message: dict[str, Any]) -> bytes:
    """One QMP message as the bytes QEMU sends: its JSON line and ``\\r\\n``."""
    return dumps(message).encode("ascii") + EOL


# -- messages, built with members in the order QEMU inserts them --------------------

def greeting(version: dict[str, Any], capabilities: list[str]) -> dict[str, Any]:
    return {"QMP": {"version": version, "capabilities": list(capabilities)}}


def success(value: Any, request_id: Any = None, *, has_id: bool = False) -> dict[str, Any]:
    reply: dict[str, Any] = {"return": value}
    if has_id:
        reply["id"] = request_id
    return reply


def failure(error_class: str, desc: str, request_id: Any = None, *,
            has_id: bool = False) -> dict[str, Any]:
    reply: dict[str, Any] = {"error": {"class": error_class, "desc": desc}}
    if has_id:
        reply["id"] = request_id
    return reply


def event(event: dict[str, Any]) -> dict[str, Any]:
    """An engine event (``{"event", "data", "timestamp"}``) as QEMU builds it."""
    message: dict[str, Any] = {"timestamp": event["timestamp"], "event": event["event"]}
    if "data" in event:
        message["data"] = event["data"]
    return message

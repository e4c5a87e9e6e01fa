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

Two writers share these rules: :func:`encode` for ordinary messages (recursive, the
fast one), and :func:`iter_encode` for messages that may be huge (a client's 64 MiB
``id`` echoed back): a generator whose every step does a bounded amount of work and
yields a piece of the line, so the server can write it as the client reads and serve
the other clients in between.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from engine.qmp.qdict import QEMUOrdered, qdict_bucket

#: Line terminator of every message QEMU sends.
EOL = b"\r\n"
#: :func:`iter_encode` yields after about this many characters of output or items
PIECE = 1 << 18
_PIECE_ITEMS = 4096
#: nesting beyond which :func:`dumps` leaves recursion for the iterative writer
_RECURSION_DEPTH = 100
#: keys longer than this are hashed in steps and their order is never cached
_LONG_KEY = 1 << 12
_M32 = 0xFFFFFFFF


class _EscapeTable(dict):  # type: ignore[type-arg]
    """``str.translate`` table: every character to its QEMU spelling (filled lazily)."""

    _LIMIT = 1 << 17

    def __missing__(self, cp: int) -> str:
        if 0xD800 <= cp <= 0xDFFF:
            # a lone surrogate (a byte that was not UTF-8, kept by surrogateescape):
            # QEMU writes what is not valid UTF-8 as U+FFFD
            text = "\\uFFFD"
        elif cp > 0xFFFF:
            low = cp - 0x10000
            text = f"\\u{0xD800 + (low >> 10):04X}\\u{0xDC00 + (low & 0x3FF):04X}"
        elif 0x20 <= cp < 0x7F:
            text = chr(cp)
        else:
            text = f"\\u{cp:04X}"
        if len(self) < self._LIMIT:
            self[cp] = text
        return text


_ESCAPES = _EscapeTable({ord('"'): '\\"', ord("\\"): "\\\\", ord("\b"): "\\b",
                         ord("\f"): "\\f", ord("\n"): "\\n", ord("\r"): "\\r",
                         ord("\t"): "\\t"})
_ORDER_CACHE: dict[tuple[str, ...], list[str]] = {}


#: short strings met before (member names, drivers, states) and how they are written
_STRING_CACHE: dict[str, str] = {}
_MEMBER_CACHE: dict[str, str] = {}
_CACHE_LIMIT = 8192
_CACHED_LENGTH = 64


def encode_string(text: str) -> str:
    """``text`` as a QEMU JSON string literal."""
    encoded = _STRING_CACHE.get(text)
    if encoded is not None:
        return encoded
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        encoded = f'"{text}"'
    else:
        encoded = f'"{text.translate(_ESCAPES)}"'
    if len(text) <= _CACHED_LENGTH and len(_STRING_CACHE) < _CACHE_LIMIT:
        _STRING_CACHE[text] = encoded
    return encoded


def _member(key: str) -> str:
    """``"key": `` as written before a member's value."""
    text = _MEMBER_CACHE.get(key)
    if text is None:
        text = encode_string(key) + ": "
        if len(key) <= _CACHED_LENGTH and len(_MEMBER_CACHE) < _CACHE_LIMIT:
            _MEMBER_CACHE[key] = text
    return text


def encode_float(value: float) -> str:
    """A float as QEMU prints it (C ``%.17g``; ``inf``/``-inf``/``nan`` bare)."""
    return format(value, ".17g")


def key_bucket(key: str) -> int:
    """QEMU's hash bucket of ``key`` (its modified UTF-8 bytes)."""
    if len(key) <= _LONG_KEY:
        return qdict_bucket(key)
    for bucket in _iter_bucket(key):
        if bucket >= 0:
            return bucket
    raise AssertionError("unreachable")


def _iter_bucket(key: str) -> Iterator[int]:
    """QEMU's bucket of a long key in steps: yields -1 after each step, then the bucket.

    QEMU adds each byte shifted by ``(5 * i) % 24``, which repeats every 24 bytes, so
    the bytes are summed per position modulo 24 (C-speed slices) a step at a time.
    """
    data = key.encode("utf-8", "surrogatepass").replace(b"\x00", b"\xc0\x80")
    value = (0x238F13AF * len(data)) & _M32
    step = 24 << 15
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        for r in range(24):
            value = (value + (sum(chunk[r::24]) << ((r * 5) % 24))) & _M32
        yield -1
    yield ((1103515243 * value + 12345) & _M32) % 512


def member_order(obj: dict[str, Any]) -> list[str]:
    """The keys of ``obj`` in the order QEMU writes them."""
    if type(obj) is QEMUOrdered or isinstance(obj, QEMUOrdered):
        return list(obj)
    keys = tuple(obj)
    order = _ORDER_CACHE.get(keys)
    if order is None:
        order = _sorted_members(keys, [key_bucket(k) for k in keys])
        if len(_ORDER_CACHE) < 4096 and sum(map(len, keys)) <= _LONG_KEY:
            _ORDER_CACHE[keys] = order
    return order


def _sorted_members(keys: tuple[str, ...], buckets: list[int]) -> list[str]:
    """QEMU walks its buckets in order; in one bucket the key inserted last comes first."""
    if len(keys) < 2:
        return list(keys)
    ranked = sorted(range(len(keys)), key=lambda i: (buckets[i], -i))
    return [keys[i] for i in ranked]


# -- the ordinary writer --------------------------------------------------------------

class _TooDeep(Exception):
    pass


# every reply's values pass here: one flat dispatch on the value's type, where a helper
# per branch would cost every value a call (tests/bench measures the writer)
def _dump(value: Any, emit: Any, depth: int) -> None:  # noqa: C901
    t = type(value)
    if t is str:
        emit(encode_string(value))
    elif t is QEMUOrdered:
        if not value:
            emit("{}")
            return
        if depth > _RECURSION_DEPTH:
            raise _TooDeep
        sep = "{"
        for key, member in value.items():
            emit(sep)
            emit(_member(key))
            _dump(member, emit, depth + 1)
            sep = ", "
        emit("}")
    elif t is dict:
        if not value:
            emit("{}")
            return
        if depth > _RECURSION_DEPTH:
            raise _TooDeep
        sep = "{"
        for key in member_order(value):
            emit(sep)
            emit(_member(key))
            _dump(value[key], emit, depth + 1)
            sep = ", "
        emit("}")
    elif t is list or t is tuple:
        if not value:
            emit("[]")
            return
        if depth > _RECURSION_DEPTH:
            raise _TooDeep
        sep = "["
        for element in value:
            emit(sep)
            _dump(element, emit, depth + 1)
            sep = ", "
        emit("]")
    elif value is True:
        emit("true")
    elif value is False:
        emit("false")
    elif value is None:
        emit("null")
    elif t is int:
        emit(int.__repr__(value))
    elif t is float:
        emit(format(value, ".17g"))
    else:
        emit("".join(_iter_text(value)))


def dumps(value: Any) -> str:
    """``value`` as QEMU's JSON text (no line terminator)."""
    out: list[str] = []
    try:
        _dump(value, out.append, 0)
    except _TooDeep:
        return "".join(_iter_text(value))
    return "".join(out)


def encode(message: dict[str, Any]) -> bytes:
    """One QMP message as the bytes QEMU sends: its JSON line and ``\\r\\n``.

    Most replies hold only what Python's C JSON encoder writes exactly as QEMU does
    (dicts already in QEMU's order, strings, integers, booleans, null), once its
    lower-case ``\\u`` escapes are made upper-case; those are written by it, the
    rest by :func:`dumps`.
    """
    if _c_writable(message, 0):
        text = _C_ENCODER.encode(message)
        if "\\u" in text:
            text = _UNICODE_ESCAPE.sub(_upper_hex, text)
        return text.encode("ascii") + EOL
    return dumps(message).encode("ascii") + EOL


_C_ENCODER = json.JSONEncoder(ensure_ascii=True, check_circular=False,
                              separators=(", ", ": "))
#: a \\u escape: preceded by an odd number of backslashes (an even number is escaped
#: backslashes followed by a plain "u")
#: what the C encoder would write as a lone ``\\uDCxx`` where QEMU writes U+FFFD
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNICODE_ESCAPE = re.compile(r"(\\+)u([0-9a-f]{4})")


def _upper_hex(match: re.Match[str]) -> str:
    slashes, digits = match.groups()
    return f"{slashes}u{digits.upper()}" if len(slashes) % 2 else match.group(0)


def _c_writable(value: Any, depth: int) -> bool:
    """True when the C encoder writes ``value`` exactly as QEMU would (no floats, no
    plain dict of several members, nothing deeper than recursion allows)."""
    t = type(value)
    if t is str:
        return value.isascii() or _SURROGATE.search(value) is None
    if t is int or t is bool or value is None:
        return True
    if depth > _RECURSION_DEPTH:
        return False
    if t is QEMUOrdered or (t is dict and len(value) < 2):
        items = value.values()
    elif t is list or t is tuple:
        items = value
    else:
        return False
    for item in items:   # a loop, not all(): this runs for every reply
        if not _c_writable(item, depth + 1):
            break
    else:
        return True
    return False


# -- the writer in steps ----------------------------------------------------------------

class _Raw:
    """Text to emit as is (punctuation between the values on the work stack)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _KeyOf:
    """A dict member's key, written once the order of a long-keyed dict is known."""

    __slots__ = ("first", "key")

    def __init__(self, key: str, first: bool) -> None:
        self.key = key
        self.first = first


_CLOSE_OBJECT, _CLOSE_ARRAY, _COMMA = _Raw("}"), _Raw("]"), _Raw(", ")


# one loop over an explicit stack (values nested deeper than Python's recursion allows),
# its branches the JSON value kinds: a state machine reads best in one piece
def _iter_text(value: Any) -> Iterator[str]:  # noqa: C901, PLR0915
    """``value`` as QEMU's JSON text, in pieces; each step is bounded work."""
    out: list[str] = []
    size = items = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        items += 1
        if isinstance(item, _Raw):
            text = item.text
        elif isinstance(item, str):
            if len(item) > PIECE:
                yield from out
                out, size, items = [], 0, 0
                yield '"'
                for start in range(0, len(item), PIECE):
                    yield item[start:start + PIECE].translate(_ESCAPES)
                text = '"'
            else:
                text = encode_string(item)
        elif isinstance(item, _KeyOf):
            text = ("" if item.first else ", ") + encode_string(item.key) + ": "
        elif item is True:
            text = "true"
        elif item is False:
            text = "false"
        elif item is None:
            text = "null"
        elif isinstance(item, int):
            text = int.__repr__(int(item))
        elif isinstance(item, float):
            text = encode_float(item)
        elif isinstance(item, dict):
            if not item:
                text = "{}"
            else:
                keys = list(item) if isinstance(item, QEMUOrdered) else None
                if keys is None:
                    buckets = []
                    for key in item:
                        if len(key) > _LONG_KEY:
                            for bucket in _iter_bucket(key):
                                if bucket < 0:
                                    yield ""   # a step of a long key's hash
                                else:
                                    buckets.append(bucket)
                        else:
                            buckets.append(qdict_bucket(key))
                    keys = _sorted_members(tuple(item), buckets)
                stack.append(_CLOSE_OBJECT)
                for n, key in enumerate(reversed(keys)):
                    stack.append(item[key])
                    stack.append(_KeyOf(key, n == len(keys) - 1))
                text = "{"
        elif isinstance(item, list | tuple):
            if not item:
                text = "[]"
            else:
                stack.append(_CLOSE_ARRAY)
                for n, element in enumerate(reversed(item)):
                    stack.append(element)
                    if n != len(item) - 1:
                        stack.append(_COMMA)
                text = "["
        else:
            raise TypeError(f"cannot encode {type(item).__name__} as QMP JSON")
        out.append(text)
        size += len(text)
        if size >= PIECE or items >= _PIECE_ITEMS:
            yield "".join(out)
            out, size, items = [], 0, 0
    if out:
        yield "".join(out)


def iter_encode(message: dict[str, Any]) -> Iterator[bytes]:
    """One QMP message as pieces of its bytes, each made in a bounded step (an empty
    piece means "a step without output")."""
    for text in _iter_text(message):
        yield text.encode("ascii")
    yield EOL


# -- messages, built with members in the order QEMU inserts them --------------------

def _in_qemu_order(message: dict[str, Any]) -> QEMUOrdered:
    return QEMUOrdered((key, message[key]) for key in member_order(message))


def greeting(version: dict[str, Any], capabilities: list[str]) -> dict[str, Any]:
    return {"QMP": {"version": version, "capabilities": list(capabilities)}}


def success(value: Any, request_id: Any = None, *, has_id: bool = False) -> dict[str, Any]:
    if not has_id:
        return {"return": value}
    return _in_qemu_order({"return": value, "id": request_id})


def failure(error_class: str, desc: str, request_id: Any = None, *,
            has_id: bool = False) -> dict[str, Any]:
    reply: dict[str, Any] = {"error": _in_qemu_order({"class": error_class, "desc": desc})}
    if has_id:
        reply["id"] = request_id
        return _in_qemu_order(reply)
    return reply


def event(event: dict[str, Any]) -> dict[str, Any]:
    """An engine event (``{"event", "data", "timestamp"}``) as QEMU builds it."""
    message: dict[str, Any] = {"timestamp": _in_qemu_order(event["timestamp"]),
                               "event": event["event"]}
    if "data" in event:
        message["data"] = event["data"]
    return _in_qemu_order(message)

"""QEMU's JSON parser, fed one token at a time.

QEMU collects a message's tokens and parses them once the message is complete
(recursive descent, first error wins). The same grammar is run here as a state
machine that takes each token as the lexer produces it, so a message of two million
tokens is parsed while it arrives instead of in one long step at its end, and nesting
needs no recursion. The answers are QEMU's:

* a value is ``{``, ``[``, a string, a number or a keyword; anything else is
  ``expecting value``; unknown keywords are ``invalid keyword '...'``;
* an object's key is parsed as any value and must then be a string (``key is not a
  string in object``); then ``:`` (``missing : in object pair``), the value, and a
  key already present is a ``duplicate key``; then ``,`` or ``}`` (``expected
  separator in dict``); arrays likewise (``expected separator in list``);
* errors inside a string (escapes, UTF-8) count where the parser reaches the string.

The first error is kept and later tokens are ignored; the stream decides when the
message ends (braces and brackets balance) and then asks :meth:`MessageBuilder.finish`.

With ``defer_long``, string values of :data:`~engine.server.longtext.LONG_STRING`
characters or more stay in pieces and the message comes out as a
:class:`~engine.server.longtext.PendingMessage`, to be completed off the event loop
(object keys are always joined: they must be hashed to find duplicates).
"""

from __future__ import annotations

from typing import Any

from engine.server.jsontext import (
    StringDecoder,
    float_value,
    integer_value,
    keyword_error,
    string_value,
)
from engine.server.longtext import LONG_STRING, LongString, PendingMessage

# token kinds (the structural ones are their own character)
LCURLY, RCURLY, LSQUARE, RSQUARE, COLON, COMMA = "{", "}", "[", "]", ":", ","
STRING, INTEGER, FLOAT, KEYWORD = "string", "integer", "float", "keyword"

# what the builder expects next
_VALUE, _FIRST_IN_OBJECT, _FIRST_IN_ARRAY, _COLON, _SEPARATOR = range(5)
_KEYWORDS = {b"true": True, b"false": False, b"null": None}


class _Frame:
    """An open object or array: where finished values go."""

    __slots__ = ("container", "key", "want_key")

    def __init__(self, container: dict[str, Any] | list[Any]) -> None:
        self.container = container
        self.key: str | None = None
        #: objects: the next finished value is a key (else a member's value)
        self.want_key = True


class MessageBuilder:
    """One message's value, built token by token."""

    __slots__ = ("_expect", "_places", "_stack", "defer_long", "done", "error", "value")

    def __init__(self, defer_long: bool = False) -> None:
        self.defer_long = defer_long
        #: where long strings were stored (see ``PendingMessage``)
        self._places: list[tuple[Any, Any]] = []
        self._stack: list[_Frame] = []
        self._expect = _VALUE
        self.error: str | None = None
        self.done = False
        self.value: Any = None

    def finish(self) -> tuple[Any, str | None]:
        """``(value, None)``, or ``(None, error text)`` (without QEMU's prefix)."""
        if self.error is not None:
            return None, self.error
        if not self.done:
            return None, "premature EOI"
        if self._places or isinstance(self.value, LongString):
            return PendingMessage(self.value, self._places), None
        return self.value, None

    def token(self, kind: str, payload: bytes | StringDecoder) -> None:
        """Take the next token; ``payload`` is its text (a decoder for long strings)."""
        if self.error is not None:
            return
        expect = self._expect
        if expect == _SEPARATOR:
            self._separator(kind)
            return
        if expect == _COLON:
            if kind == COLON:
                self._expect = _VALUE
            else:
                self.error = "missing : in object pair"
            return
        # a value (or the end of an empty container)
        if kind == LCURLY:
            self._stack.append(_Frame({}))
            self._expect = _FIRST_IN_OBJECT
            return
        if kind == LSQUARE:
            self._stack.append(_Frame([]))
            self._expect = _FIRST_IN_ARRAY
            return
        if (kind == RCURLY and expect == _FIRST_IN_OBJECT) or \
                (kind == RSQUARE and expect == _FIRST_IN_ARRAY):
            self._store(self._stack.pop().container)
            return
        if kind == STRING:
            value: Any = self._long_string(payload) if isinstance(payload, StringDecoder) \
                else string_value(payload)
            if isinstance(value, tuple):
                self.error = value[0]
                return
        elif kind == INTEGER:
            value = integer_value(payload)  # type: ignore[arg-type]
        elif kind == FLOAT:
            value = float_value(payload)  # type: ignore[arg-type]
        elif kind == KEYWORD:
            value = _KEYWORDS.get(payload, _KEYWORDS)  # type: ignore[arg-type]
            if value is _KEYWORDS:
                self.error = keyword_error(payload)  # type: ignore[arg-type]
                return
        else:
            self.error = "expecting value"
            return
        self._store(value)

    def _long_string(self, decoder: StringDecoder) -> str | LongString | tuple[str]:
        parts = decoder.parts()
        if isinstance(parts, tuple):
            return parts
        if self.defer_long and decoder.length >= LONG_STRING:
            text = LongString(parts)
            if len(text) >= LONG_STRING:
                return text
        return "".join(parts)

    def _separator(self, kind: str) -> None:
        frame = self._stack[-1]
        if isinstance(frame.container, dict):
            if kind == COMMA:
                frame.want_key = True
                self._expect = _VALUE
            elif kind == RCURLY:
                self._store(self._stack.pop().container)
            else:
                self.error = "expected separator in dict"
        elif kind == COMMA:
            self._expect = _VALUE
        elif kind == RSQUARE:
            self._store(self._stack.pop().container)
        else:
            self.error = "expected separator in list"

    def _store(self, value: Any) -> None:
        """Put a finished value where it belongs."""
        if not self._stack:
            self.value = value
            self.done = True
            return
        frame = self._stack[-1]
        container = frame.container
        if isinstance(container, dict):
            if frame.want_key:
                if isinstance(value, LongString):
                    value = value.join()
                if not isinstance(value, str):
                    self.error = "key is not a string in object"
                    return
                frame.key = value
                frame.want_key = False
                self._expect = _COLON
                return
            if frame.key in container:
                self.error = "duplicate key"
                return
            container[frame.key] = value  # type: ignore[index]
            if isinstance(value, LongString):
                self._places.append((container, frame.key))
        else:
            container.append(value)
            if isinstance(value, LongString):
                self._places.append((container, len(container) - 1))
        self._expect = _SEPARATOR

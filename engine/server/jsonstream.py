"""Split a QMP byte stream into JSON messages and parse them, the way QEMU 7.2 does.

Clients need not end a message with a newline (qemu.qmp never does), so the server
cannot read lines; it must find where one JSON value ends in a stream that may arrive
in any pieces. :class:`JSONStream` does what QEMU's monitor does, so that good input,
bad input and the recovery after bad input all answer alike, byte for byte:

* **Lexer.** Bytes become tokens: ``{}[]:,``, strings (in double *or single* quotes),
  numbers and lower-case keywords. A number or keyword ends only when the next byte
  arrives (a bare ``42`` waits). A byte that cannot continue a token is an error: the
  token so far and that byte are answered as ``JSON parse error, stray '...'`` and the
  lexer skips input up to the next structural character or control character (tab
  excepted) or 0xFE/0xFF, which it then reads afresh. A token that grows past 64 MiB
  is dropped (``JSON token size limit exceeded``) and the lexer starts afresh on the
  very next byte.
* **Streamer.** Tokens are collected until braces and brackets balance (or close more
  than they opened); that is one message. Before a token is added, QEMU's limits are
  checked: 64 MiB of token text, 2 Mi tokens, nesting 1024; crossing one answers
  ``JSON token size limit exceeded`` / ``JSON token count limit exceeded`` /
  ``JSON nesting depth limit exceeded`` and drops the message so far. A lexical
  error drops it too.
* **Parser.** :mod:`~engine.server.jsonparser` builds the value token by token.

No client can stall the server with its input: the work is linear in the input (the
lexer runs regular expressions over whole runs of bytes, never a Python step per
byte of a long token), and :meth:`JSONStream.pump` stops at a deadline so that the
server can share its time between clients. Values are as QEMU reads them
(:mod:`~engine.server.jsontext`): integers of any length, modified UTF-8.

Slightly over 500 lines: the lexer and the streamer hand each other tokens and
error states on every byte; they stay in one module so that QEMU's recovery rules
(what is skipped after which error) read in one place.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.server.jsonparser import (
    COLON,
    COMMA,
    FLOAT,
    INTEGER,
    KEYWORD,
    LCURLY,
    LSQUARE,
    RCURLY,
    RSQUARE,
    STRING,
    MessageBuilder,
)
from engine.server.jsontext import StringDecoder, decode_lossy, integer_value
from engine.server.longtext import LONG_STRING, LongString, join_released

MAX_NESTING = 1024
MAX_TOKEN_SIZE = 64 << 20
MAX_TOKEN_COUNT = 2 << 20

#: a string's body goes to its decoder in pieces of at most this many bytes, so that
#: one step of work stays short whatever the string holds
STRING_PIECE = 64 << 10
#: complete tokens lexed between two looks at the clock
_TOKENS_PER_CLOCK = 64


@dataclass(frozen=True, slots=True)
class JSONParseError:
    """A message that could not be read; ``desc`` is QEMU's error text (a
    :class:`~engine.server.longtext.LongString` when it quotes a long token and the
    stream defers long strings: :meth:`completed` joins it)."""

    desc: str | LongString

    def completed(self) -> JSONParseError:
        """This error with its text in one piece (call off the event loop)."""
        if isinstance(self.desc, LongString):
            return JSONParseError(join_released(self.desc.parts))
        return self


# -- lexer tables ------------------------------------------------------------------------

(_START, _RECOVERY, _STRING_BODY, _STRING_ESCAPE, _ZERO, _SIGN, _DIGITS, _MANTISSA,
 _MANTISSA_DIGITS, _EXP_E, _EXP_SIGN, _EXP_DIGITS, _KEYWORD) = range(13)

#: complete tokens (and whitespace) at the start state, within one buffer; a token that
#: may continue past the buffer's end, or any error, is left to the state machine
_FAST = re.compile(
    rb"(?P<w>[ \t\n\r]++)"
    rb"|(?P<p>[{}\[\]:,])"
    rb"|(?P<s>\"(?:[^\"\\\x00-\x1f\xfe\xff]++|\\[\x20-\xfd])*+\""
    rb"|'(?:[^'\\\x00-\x1f\xfe\xff]++|\\[\x20-\xfd])*+')"
    rb"|(?P<i>-?(?:0(?=[^0-9.])|[1-9][0-9]*+(?=[^0-9.eE])))"
    rb"|(?P<f>-?(?:0|[1-9][0-9]*+)\.[0-9]++(?=[^0-9eE])"
    rb"|-?(?:(?:0|[1-9][0-9]*+)\.[0-9]++|[1-9][0-9]*+)[eE][-+]?[0-9]++(?=[^0-9]))"
    rb"|(?P<k>[a-z]++(?=[^a-z]))")
_FAST_KIND = {"s": STRING, "i": INTEGER, "f": FLOAT, "k": KEYWORD}
_PUNCTUATION = {ord(c): c for c in (LCURLY, RCURLY, LSQUARE, RSQUARE, COLON, COMMA)}
#: bytes skipped in recovery: 0x20..0xFD but the structural characters, and tab
_RECOVERY_SKIP = re.compile(rb"[^{}\[\]:,\x00-\x08\x0a-\x1f\xfe\xff]*+")
_STRING_RUN = {
    0x22: re.compile(rb"(?:[^\"\\\x00-\x1f\xfe\xff]++|\\[\x20-\xfd])*+"),
    0x27: re.compile(rb"(?:[^'\\\x00-\x1f\xfe\xff]++|\\[\x20-\xfd])*+"),
}
#: the bytes a string holds as they are (no quote, backslash, control byte, 0xFE/0xFF):
#: a piece that is all of them is found by deleting them (``bytes.translate``), several
#: times faster than the run's pattern, which then reads only the pieces that are not
_PLAIN = {
    quote: bytes(b for b in range(0x20, 0xFE) if b not in (quote, 0x5C))
    for quote in (0x22, 0x27)
}
_DIGIT_RUN = re.compile(rb"[0-9]*+")
_KEYWORD_RUN = re.compile(rb"[a-z]*+")

_ERROR, _END = 254, 255


def _table(default: int, **moves: int) -> bytes:
    row = bytearray([default] * 256)
    for chars, state in moves.items():
        for c in chars.replace("digits", "0123456789").replace("nonzero", "123456789"):
            row[ord(c)] = state
    return bytes(row)


#: the number and keyword states: next state per byte, ``_END`` (the token ends before
#: this byte) or ``_ERROR`` (this byte is stray)
_NEXT = {
    _SIGN: _table(_ERROR, **{"0": _ZERO, "nonzero": _DIGITS}),
    _ZERO: _table(_END, **{"digits": _ERROR, ".": _MANTISSA}),
    _DIGITS: _table(_END, **{"digits": _DIGITS, "eE": _EXP_E, ".": _MANTISSA}),
    _MANTISSA: _table(_ERROR, digits=_MANTISSA_DIGITS),
    _MANTISSA_DIGITS: _table(_END, **{"digits": _MANTISSA_DIGITS, "eE": _EXP_E}),
    _EXP_E: _table(_ERROR, **{"+-": _EXP_SIGN, "digits": _EXP_DIGITS}),
    _EXP_SIGN: _table(_ERROR, digits=_EXP_DIGITS),
    _EXP_DIGITS: _table(_END, digits=_EXP_DIGITS),
    _KEYWORD: _table(_END, **{chr(c): _KEYWORD for c in range(ord("a"), ord("z") + 1)}),
}
_ENDED_KIND = {_ZERO: INTEGER, _DIGITS: INTEGER, _MANTISSA_DIGITS: FLOAT,
               _EXP_DIGITS: FLOAT, _KEYWORD: KEYWORD}
_RUNS = {_DIGITS: _DIGIT_RUN, _MANTISSA_DIGITS: _DIGIT_RUN, _EXP_DIGITS: _DIGIT_RUN,
         _KEYWORD: _KEYWORD_RUN}
_FIRST = {ord("-"): _SIGN, ord("0"): _ZERO}
_FIRST.update({c: _DIGITS for c in b"123456789"})
_FIRST.update({c: _KEYWORD for c in range(ord("a"), ord("z") + 1)})


class _NotQEMUs(ValueError):
    """The standard decoder met something it reads differently from QEMU."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _NotQEMUs("duplicate key")
    return obj


def _qemu_integer(text: str) -> int | float:
    return integer_value(text.encode("ascii"))


def _refuse(text: str) -> None:
    raise _NotQEMUs(text)


#: a message read in one go by the standard decoder (see ``JSONStream._whole_message``)
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_int=_qemu_integer,
                            parse_constant=_refuse)
_WHOLE_MESSAGE = 64 << 10


def _stray(text: str) -> JSONParseError:
    return JSONParseError(f"JSON parse error, stray '{text}'")


def _stray_byte(c: int) -> str:
    """One offending byte as QEMU quotes it (a NUL ends its C string: nothing shows)."""
    return "" if c == 0 else decode_lossy(bytes([c]))


class JSONStream:
    """Incremental QMP input: push bytes, pump out parsed messages in order.

    :meth:`feed` does both at once. :meth:`pump` with a deadline leaves the rest of
    the input for a later call, so one client's huge input is read in short steps.
    """

    def __init__(self, *, max_nesting: int = MAX_NESTING, max_token_size: int = MAX_TOKEN_SIZE,
                 max_token_count: int = MAX_TOKEN_COUNT, defer_long_strings: bool = False
                 ) -> None:
        """``defer_long_strings``: messages with long strings come out as
        :class:`~engine.server.longtext.PendingMessage` (see :mod:`~engine.server.longtext`)."""
        self.defer_long_strings = defer_long_strings
        self.max_nesting = max_nesting
        self.max_token_size = max_token_size
        self.max_token_count = max_token_count
        self._chunks: deque[bytes] = deque()
        self._offset = 0
        self._backlog = 0
        # lexer: the token being read, when it is not complete within one buffer
        self._state = _START
        self._pieces: list[bytes] = []
        self._string: StringDecoder | None = None
        self._token_length = 0
        # streamer: the message being collected
        self._braces = 0
        self._brackets = 0
        self._token_count = 0
        self._token_bytes = 0
        self._builder = MessageBuilder(self.defer_long_strings)
        self._sizes: list[int] | None = None
        # the buffer being read, as text (None unless it is ASCII)
        self._text_of: bytes | None = None
        self._text: str | None = None

    # -- public ----------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Bytes pushed and not read yet."""
        return self._backlog

    @property
    def pending(self) -> int:
        """Bytes held for what is not answered yet: unread input, the message so far."""
        return self._backlog + self._token_bytes + self._token_length

    def push(self, data: bytes) -> None:
        """Add input (read later by :meth:`pump`)."""
        if data:
            self._chunks.append(data)
            self._backlog += len(data)

    def pump(self, deadline: float | None = None,
             sizes: list[int] | None = None) -> list[Any | JSONParseError]:
        """Read pushed input until it is all read or ``time.monotonic()`` passes
        ``deadline``; return the messages completed (values or parse errors).

        ``sizes``, if given, gets each message's bytes of token text (0 for errors).
        """
        out: list[Any | JSONParseError] = []
        self._sizes = sizes
        chunks = self._chunks
        while chunks:
            buf = chunks[0]
            start = self._offset
            pos = self._lex(buf, start, out, deadline)
            self._backlog -= pos - start
            if pos < len(buf):
                self._offset = pos
                break
            chunks.popleft()
            self._offset = 0
            if deadline is not None and time.monotonic() >= deadline:
                break
        return out

    def feed(self, data: bytes) -> list[Any | JSONParseError]:
        """Add input; return every message it completes."""
        self.push(data)
        return self.pump()

    # -- lexer -----------------------------------------------------------------------------
    def _lex(self, buf: bytes, pos: int, out: list[Any], deadline: float | None) -> int:
        end = len(buf)
        fast = _FAST.match
        counted = 0
        while pos < end:
            if self._state == _START:
                if self._token_count == 0 and (buf[pos] == 0x7B or buf[pos] == 0x5B):
                    whole = self._whole_message(buf, pos, out)
                    if whole:
                        pos = whole
                        continue
                m = fast(buf, pos)
                if m is None:
                    pos = self._begin(buf, pos, out)
                    continue
                group = m.lastgroup
                stop = m.end()
                if stop - pos > self.max_token_size and group != "w":
                    pos = self._begin(buf, pos, out)   # QEMU cuts it: the long way
                    continue
                if group == "p":
                    self._token(_PUNCTUATION[buf[pos]], b"", 1, out)
                elif group != "w":
                    self._token(_FAST_KIND[group], buf[pos:stop], stop - pos,  # type: ignore[index]
                                out)
                pos = stop
                counted += 1
                if counted >= _TOKENS_PER_CLOCK:
                    counted = 0
                    if deadline is not None and time.monotonic() >= deadline:
                        return pos
                continue
            pos = self._continue(buf, pos, out)
            if deadline is not None and time.monotonic() >= deadline:
                return pos
        return pos

    def _whole_message(self, buf: bytes, pos: int, out: list[Any]) -> int:
        """Read an ordinary message at ``pos`` in one go; where it ends, or 0.

        Most messages are short, ASCII, standard JSON objects. For those, the C JSON
        decoder of Python's standard library gives exactly QEMU's value, and much
        faster; whatever it might read differently from QEMU is refused and left to
        the lexer: escapes ``\\u`` (surrogates, noncharacters, NUL), ``0e..`` (not a
        number for QEMU), duplicate keys, ``NaN``/``Infinity``, anything near a limit.
        """
        if self._text_of is not buf:
            self._text_of = buf
            self._text = buf.decode("ascii") if buf.isascii() else None
        text = self._text
        if text is None:
            return 0
        try:
            value, stop = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return 0
        size = stop - pos
        if size >= min(self.max_token_size, self.max_token_count, _WHOLE_MESSAGE):
            return 0
        message = text[pos:stop]
        if "\\u" in message or "0e" in message or "0E" in message or \
                message.count("{") + message.count("[") > self.max_nesting:
            return 0
        self._emit(out, value, size)
        return stop

    def _begin(self, buf: bytes, pos: int, out: list[Any]) -> int:
        """The first byte of a token the fast path could not take whole."""
        c = buf[pos]
        if c == 0x22 or c == 0x27:
            self._state = _STRING_BODY
            self._string = StringDecoder(c)
            self._token_length = 1
            return pos + 1
        state = _FIRST.get(c)
        if state is None:
            self._emit(out, _stray(_stray_byte(c)))
            self._reset_message()
            self._state = _RECOVERY
            return pos + 1
        self._state = state
        self._pieces = [buf[pos:pos + 1]]
        self._token_length = 1
        return pos + 1

    def _continue(self, buf: bytes, pos: int, out: list[Any]) -> int:
        """One step of a token that spans buffers or needs a closer look."""
        state = self._state
        end = len(buf)
        if state == _RECOVERY:
            skipped = _RECOVERY_SKIP.match(buf, pos)
            assert skipped is not None  # the pattern matches the empty string too
            stop = skipped.end()
            if stop < end:
                self._state = _START   # that byte is read again from the start state
            return stop
        if state in (_STRING_BODY, _STRING_ESCAPE):
            return self._continue_string(buf, pos, out)
        run = _RUNS.get(state)
        if run is not None:
            matched = run.match(buf, pos)
            assert matched is not None  # runs match the empty string too
            stop = matched.end()
            if stop > pos:
                if self._too_long(stop - pos):
                    return self._cut(pos, stop - pos, out)
                self._pieces.append(buf[pos:stop])
                pos = stop
                if pos == end:
                    return pos
        c = buf[pos]
        move = _NEXT[state][c]
        if move == _END:   # the token ends before c, which is read again
            text = b"".join(self._pieces)
            self._end_token()
            self._token(_ENDED_KIND[state], text, len(text), out)
            return pos
        if move == _ERROR:   # the token so far is ASCII: digits, signs, letters
            parts = [piece.decode("ascii") for piece in self._pieces]
            parts.append(_stray_byte(c))
            self._end_token()
            self._emit(out, self._stray_quoting(parts))
            self._reset_message()
            self._state = _RECOVERY
            return pos + 1
        if self._too_long(1):
            return self._cut(pos, 1, out)
        self._pieces.append(buf[pos:pos + 1])
        self._state = move
        return pos + 1

    def _continue_string(self, buf: bytes, pos: int, out: list[Any]) -> int:
        decoder = self._string
        assert decoder is not None
        quote = decoder.quote
        c = buf[pos]
        if self._state == _STRING_ESCAPE:
            if 0x20 <= c <= 0xFD:
                if self._too_long(1):
                    return self._cut(pos, 1, out)
                decoder.add(buf[pos:pos + 1])
                self._state = _STRING_BODY
                return pos + 1
            return self._string_stray(decoder, c, pos, out)
        stop = min(len(buf), pos + STRING_PIECE)
        piece = buf[pos:stop]
        if piece.translate(None, _PLAIN[quote]):   # not plain text all through
            run = _STRING_RUN[quote].match(buf, pos, stop)
            assert run is not None  # the pattern matches the empty string too
            piece = piece[:run.end() - pos]
        if piece:
            if self._too_long(len(piece)):
                return self._cut(pos, len(piece), out)
            decoder.add(piece)
            return pos + len(piece)
        if c == quote:
            length = self._token_length + 1
            self._end_token()
            self._token(STRING, decoder, length, out)
            return pos + 1
        if c == 0x5C:   # a backslash whose escape is cut off here, or bad
            if self._too_long(1):
                return self._cut(pos, 1, out)
            decoder.add(b"\\")
            self._state = _STRING_ESCAPE
            return pos + 1
        return self._string_stray(decoder, c, pos, out)

    def _string_stray(self, decoder: StringDecoder, c: int, pos: int, out: list[Any]) -> int:
        parts = [chr(decoder.quote), *decoder.raw_parts(), _stray_byte(c)]
        self._end_token()
        self._emit(out, self._stray_quoting(parts))
        self._reset_message()
        self._state = _RECOVERY
        return pos + 1

    def _stray_quoting(self, parts: list[str]) -> JSONParseError:
        """``stray '...'`` quoting a token's text; a long one stays in pieces if the
        stream defers long strings (a copy of up to 64 MiB is no work for the loop)."""
        if self.defer_long_strings:
            text = LongString(["JSON parse error, stray '", *parts, "'"])
            if len(text) >= LONG_STRING:
                return JSONParseError(text)
        return _stray("".join(parts))

    def _too_long(self, more: int) -> bool:
        """Add ``more`` bytes to the token; True if QEMU would cut it within them."""
        if self._token_length + more > self.max_token_size:
            return True
        self._token_length += more
        return False

    def _cut(self, pos: int, more: int, out: list[Any]) -> int:
        """QEMU drops a token once it holds ``max_token_size`` + 1 bytes: the byte that
        crosses the limit is the token's last; lexing starts afresh after it."""
        taken = self.max_token_size + 1 - self._token_length
        assert 0 < taken <= more
        self._end_token()
        self._emit(out, JSONParseError("JSON token size limit exceeded"))
        self._reset_message()
        return pos + taken

    def _end_token(self) -> None:
        self._state = _START
        self._pieces = []
        self._string = None
        self._token_length = 0

    # -- streamer --------------------------------------------------------------------------
    def _token(self, kind: str, payload: bytes | StringDecoder, length: int,
               out: list[Any]) -> None:
        """Add a complete token to the message; append the message once it is whole."""
        if kind == LCURLY:
            self._braces += 1
        elif kind == RCURLY:
            self._braces -= 1
        elif kind == LSQUARE:
            self._brackets += 1
        elif kind == RSQUARE:
            self._brackets -= 1
        error = None
        if self._token_bytes + length + 1 > self.max_token_size:
            error = "JSON token size limit exceeded"
        elif self._token_count + 1 > self.max_token_count:
            error = "JSON token count limit exceeded"
        elif self._braces + self._brackets > self.max_nesting:
            error = "JSON nesting depth limit exceeded"
        if error is not None:
            self._emit(out, JSONParseError(error))
            self._reset_message()
            return
        self._token_count += 1
        self._token_bytes += length
        builder = self._builder
        builder.token(kind, payload)
        braces, brackets = self._braces, self._brackets
        if (braces > 0 or brackets > 0) and braces >= 0 and brackets >= 0:
            return
        value, desc = builder.finish()
        self._emit(out, value if desc is None else JSONParseError(f"JSON parse error, {desc}"),
                   self._token_bytes)
        self._reset_message()

    def _emit(self, out: list[Any], message: Any, size: int = 0) -> None:
        out.append(message)
        if self._sizes is not None:
            self._sizes.append(size)

    def _reset_message(self) -> None:
        self._braces = 0
        self._brackets = 0
        self._token_count = 0
        self._token_bytes = 0
        self._builder = MessageBuilder(self.defer_long_strings)

"""Split a QMP byte stream into JSON messages, and parse them, the way QEMU does.

Clients need not end a message with a newline (qemu.qmp never does), so the server
cannot read lines; it must find where one JSON value ends in a stream that may
arrive in any pieces. :class:`JSONStream` does what QEMU 7.2's monitor does, so
that good input, bad input and the recovery after bad input all answer alike:

* A lexer cuts the bytes into tokens: the structural characters ``{}[]:,``,
  strings (in double *or single* quotes, as QEMU accepts), numbers and lower-case
  keywords. A number or keyword is complete only when the next character arrives,
  so a bare ``42`` waits, just as in QEMU.
* Tokens are collected until braces and brackets balance (or close more than they
  opened); then the collected tokens are one message and are parsed.
* A character that cannot continue a token is a lexical error: the partial token
  and that character are reported (``JSON parse error, stray '...'``), the message
  under construction is dropped, and input is skipped up to the next structural
  character or control character (other than tab) before lexing resumes.
* Limits guard the server, with QEMU's values by default: nesting depth 1024,
  64 MiB of token text and 2 Mi tokens per message. Crossing one drops the message
  with ``JSON nesting depth limit exceeded`` / ``JSON token size limit exceeded`` /
  ``JSON token count limit exceeded``.

:meth:`JSONStream.feed` returns, for each completed message, either the parsed value
or a :class:`JSONParseError` whose text is QEMU's ``desc``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_NESTING = 1024
MAX_TOKEN_SIZE = 64 << 20
MAX_TOKEN_COUNT = 2 << 20

_WHITESPACE = re.compile(rb"[ \t\n\r]+")
_KEYWORD = re.compile(rb"[a-z]+")
#: A string's body after the opening quote, as far as it is valid. Possessive runs keep
#: matching linear (no backtracking), and a string arriving in many reads is scanned
#: once: each feed resumes where the previous one stopped (``JSONStream._scan``).
_DQ_BODY = re.compile(rb'(?:[^"\\\x00-\x1f\xfe\xff]++|\\[^\x00-\x1f\xfe\xff])*+')
_SQ_BODY = re.compile(rb"(?:[^'\\\x00-\x1f\xfe\xff]++|\\[^\x00-\x1f\xfe\xff])*+")
#: Input skipped after a lexical error.
_RECOVERY_SKIP = re.compile(rb"[^{}\[\]:,\x00-\x08\x0a-\x1f\xfe\xff]*")
_STRUCTURAL = frozenset(b"{}[]:,")
_DIGITS = frozenset(b"0123456789")

# token kinds
LCURLY, RCURLY, LSQUARE, RSQUARE, COLON, COMMA = "{", "}", "[", "]", ":", ","
STRING, INTEGER, FLOAT, KEYWORD = "string", "integer", "float", "keyword"

_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class JSONParseError:
    """A message that could not be parsed; ``desc`` is QEMU's error text."""

    desc: str


class _LexError(Exception):
    def __init__(self, text: bytes) -> None:
        super().__init__(text)
        self.text = text


class JSONStream:
    """Incremental QMP input: feed bytes, get parsed messages back in order."""

    def __init__(self, *, max_nesting: int = MAX_NESTING, max_token_size: int = MAX_TOKEN_SIZE,
                 max_token_count: int = MAX_TOKEN_COUNT) -> None:
        self.max_nesting = max_nesting
        self.max_token_size = max_token_size
        self.max_token_count = max_token_count
        self._buf = b""
        self._scan = 0
        self._recovering = False
        self._reset_message()

    def _reset_message(self) -> None:
        self._tokens: list[tuple[str, bytes]] = []
        self._braces = 0
        self._brackets = 0
        self._size = 0

    @property
    def pending(self) -> int:
        """Bytes held for a message not complete yet (input and collected tokens)."""
        return len(self._buf) + self._size

    def feed(self, data: bytes) -> list[Any | JSONParseError]:
        """Add input; return every message it completes (values or parse errors)."""
        buf = self._buf + data if self._buf else data
        scan, self._scan = self._scan, 0   # only for a string continued at buf[0]
        out: list[Any | JSONParseError] = []
        pos, end = 0, len(buf)
        while pos < end:
            if self._recovering:
                pos = _RECOVERY_SKIP.match(buf, pos).end()
                if pos >= end:
                    break
                self._recovering = False
                if buf[pos] not in _STRUCTURAL:
                    pos += 1  # a control character or 0xFE/0xFF ends recovery
                continue
            c = buf[pos]
            if c in (0x20, 0x09, 0x0A, 0x0D):
                pos = _WHITESPACE.match(buf, pos).end()
                continue
            try:
                token = self._lex(buf, pos, scan if pos == 0 else 0)
            except _LexError as exc:
                self._reset_message()
                self._recovering = True
                pos += len(exc.text)
                shown = exc.text.decode("utf-8", "replace")
                out.append(JSONParseError(f"JSON parse error, stray '{shown}'"))
                continue
            if token is None:  # incomplete: wait for more input
                if end - pos > self.max_token_size:
                    self._reset_message()
                    self._scan = 0
                    self._recovering = True
                    pos = end
                    out.append(JSONParseError("JSON token size limit exceeded"))
                break
            kind, text = token
            pos += len(text)
            self._collect(kind, text, out)
        self._buf = buf[pos:]
        return out

    # -- lexer ------------------------------------------------------------------------
    def _lex(self, buf: bytes, pos: int, resume: int = 0) -> tuple[str, bytes] | None:
        """The token at ``pos``; None if it may continue beyond the buffer.

        ``resume``: bytes of a string's body already checked by an earlier feed.
        """
        c = buf[pos]
        if c in _STRUCTURAL:
            return chr(c), buf[pos:pos + 1]
        if c == 0x22 or c == 0x27:  # " or '
            body = _DQ_BODY if c == 0x22 else _SQ_BODY
            end = body.match(buf, pos + 1 + resume).end()
            if end < len(buf) and buf[end] == c:
                return STRING, buf[pos:end + 1]
            bad = end + 1 if end < len(buf) and buf[end] == 0x5C else end  # a lone backslash
            if bad >= len(buf):
                self._scan = end - pos - 1   # valid so far: the next feed resumes here
                return None
            raise _LexError(buf[pos:bad + 1])
        if c == 0x2D or c in _DIGITS:  # - or digit
            return _lex_number(buf, pos)
        if 0x61 <= c <= 0x7A:  # a-z
            m = _KEYWORD.match(buf, pos)
            if m.end() >= len(buf):
                return None
            return KEYWORD, m.group(0)
        raise _LexError(buf[pos:pos + 1])

    # -- streamer ---------------------------------------------------------------------
    def _collect(self, kind: str, text: bytes, out: list[Any | JSONParseError]) -> None:
        """Add a token to the message being built; append the message once complete."""
        if kind == LCURLY:
            self._braces += 1
        elif kind == RCURLY:
            self._braces -= 1
        elif kind == LSQUARE:
            self._brackets += 1
        elif kind == RSQUARE:
            self._brackets -= 1
        self._tokens.append((kind, text))
        self._size += len(text)
        if self._braces < 0 or self._brackets < 0 or (self._braces == 0
                                                      and self._brackets == 0):
            tokens = self._tokens
            self._reset_message()
            out.append(parse_tokens(tokens))
            return
        error = None
        if self._size > self.max_token_size:
            error = "JSON token size limit exceeded"
        elif len(self._tokens) > self.max_token_count:
            error = "JSON token count limit exceeded"
        elif self._braces + self._brackets > self.max_nesting:
            error = "JSON nesting depth limit exceeded"
        if error is not None:
            self._reset_message()
            out.append(JSONParseError(error))


def _lex_number(buf: bytes, pos: int) -> tuple[str, bytes] | None:
    """A number token (JSON grammar; leading zeros refused); None if it may continue."""
    end = len(buf)
    i = pos
    if buf[i] == 0x2D:
        i += 1
        if i >= end:
            return None
        if buf[i] not in _DIGITS:
            raise _LexError(buf[pos:i + 1])
    if buf[i] == 0x30:  # 0
        i += 1
        if i < end and buf[i] in _DIGITS:
            raise _LexError(buf[pos:i + 1])
    else:
        while i < end and buf[i] in _DIGITS:
            i += 1
    kind = INTEGER
    if i < end and buf[i] == 0x2E:  # .
        kind = FLOAT
        i += 1
        if i >= end:
            return None
        if buf[i] not in _DIGITS:
            raise _LexError(buf[pos:i + 1])
        while i < end and buf[i] in _DIGITS:
            i += 1
    if i < end and buf[i] in (0x65, 0x45):  # e E
        kind = FLOAT
        i += 1
        if i < end and buf[i] in (0x2B, 0x2D):
            i += 1
        if i >= end:
            return None
        if buf[i] not in _DIGITS:
            raise _LexError(buf[pos:i + 1])
        while i < end and buf[i] in _DIGITS:
            i += 1
    if i >= end:
        return None
    return kind, buf[pos:i]


# -- parser ---------------------------------------------------------------------------

class _ParseError(Exception):
    pass


_ESCAPES = {ord('"'): '"', ord("'"): "'", ord("\\"): "\\", ord("/"): "/", ord("b"): "\b",
            ord("f"): "\f", ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")


def parse_tokens(tokens: list[tuple[str, bytes]]) -> Any | JSONParseError:
    """One message's tokens as a Python value, or QEMU's parse error.

    Iterative (an explicit stack, not recursion), so the nesting limit is the only
    limit on depth.
    """
    try:
        return _parse(tokens)
    except _ParseError as exc:
        return JSONParseError(f"JSON parse error, {exc}")


def _scalar(kind: str, text: bytes) -> Any:
    if kind == STRING:
        return _parse_string(text)
    if kind == INTEGER:
        value = int(text)
        return value if _INT64_MIN <= value <= _UINT64_MAX else float(text)
    if kind == FLOAT:
        return float(text)
    if kind == KEYWORD:
        if text == b"true":
            return True
        if text == b"false":
            return False
        if text == b"null":
            return None
        raise _ParseError(f"invalid keyword '{text.decode()}'")
    raise _ParseError("expecting value")


def _parse(tokens: list[tuple[str, bytes]]) -> Any:
    # stack entries: [container, pending key (objects only)]
    stack: list[list[Any]] = []
    n = len(tokens)
    i = 0
    while True:
        # -- parse a value at i (opening containers push onto the stack) ------------
        if i >= n:
            raise _ParseError("premature EOI")
        kind, text = tokens[i]
        i += 1
        value: Any
        if kind in (LCURLY, LSQUARE):
            container: Any = {} if kind == LCURLY else []
            close = RCURLY if kind == LCURLY else RSQUARE
            if i < n and tokens[i][0] == close:
                i += 1
                value = container
            else:
                stack.append([container, None])
                if kind == LCURLY:
                    i = _object_key(tokens, i, stack[-1])
                continue
        else:
            value = _scalar(kind, text)
        # -- store the value in its container; close finished containers -----------
        while True:
            if not stack:
                return value
            frame = stack[-1]
            container = frame[0]
            if isinstance(container, dict):
                if frame[1] in container:
                    raise _ParseError("duplicate key")
                container[frame[1]] = value
                if i >= n:
                    raise _ParseError("premature EOI")
                sep = tokens[i][0]
                i += 1
                if sep == COMMA:
                    i = _object_key(tokens, i, frame)
                    break
                if sep != RCURLY:
                    raise _ParseError("expected separator in dict")
            else:
                container.append(value)
                if i >= n:
                    raise _ParseError("premature EOI")
                sep = tokens[i][0]
                i += 1
                if sep == COMMA:
                    break
                if sep != RSQUARE:
                    raise _ParseError("expected separator in list")
            stack.pop()
            value = container


def _object_key(tokens: list[tuple[str, bytes]], i: int, frame: list[Any]) -> int:
    """Read ``"key" :`` at ``i`` into ``frame``; return where the value starts."""
    if i >= len(tokens):
        raise _ParseError("premature EOI")
    kind, text = tokens[i]
    if kind in (LCURLY, LSQUARE):
        raise _ParseError("key is not a string in object")
    key = _scalar(kind, text)
    if kind != STRING:
        raise _ParseError("key is not a string in object")
    if i + 1 >= len(tokens) or tokens[i + 1][0] != COLON:
        raise _ParseError("missing : in object pair")
    frame[1] = key
    return i + 2


def _parse_string(text: bytes) -> str:
    body = text[1:-1]
    if b"\\" not in body:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise _ParseError("invalid UTF-8 sequence in string") from None
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        j = body.find(b"\\", i)
        if j < 0:
            j = n
        if j > i:
            try:
                out.append(body[i:j].decode("utf-8"))
            except UnicodeDecodeError:
                raise _ParseError("invalid UTF-8 sequence in string") from None
        if j >= n:
            break
        esc = body[j + 1]
        if esc == ord("u"):
            cp, i = _parse_unicode_escape(body, j, text[1:])
            out.append(chr(cp))
            continue
        simple = _ESCAPES.get(esc)
        if simple is None:
            raise _ParseError("invalid escape sequence in string")
        out.append(simple)
        i = j + 2
    return "".join(out)


def _parse_unicode_escape(body: bytes, j: int, rest: bytes) -> tuple[int, int]:
    """The code point of ``\\uXXXX`` (or a surrogate pair) at ``j``; and where it ends.

    ``rest`` is the token after its opening quote: QEMU's error quotes the six
    characters from the backslash, the closing quote included if it comes sooner.
    """
    m = _HEX4.match(body, j + 2)
    if not m:
        shown = rest[j:j + 6].decode("utf-8", "replace")
        raise _ParseError(f"{shown} is not a valid Unicode character")
    cp = int(m.group(0), 16)
    end = j + 6
    if 0xD800 <= cp < 0xDC00:
        low = _HEX4.match(body, end + 2) if body[end:end + 2] == b"\\u" else None
        if low:
            lo = int(low.group(0), 16)
            if 0xDC00 <= lo < 0xE000:
                return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), end + 6
    if 0xD800 <= cp < 0xE000:
        raise _ParseError(f"\\u{m.group(0).decode()} is not a valid Unicode character")
    return cp, end

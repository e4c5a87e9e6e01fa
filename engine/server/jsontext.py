"""The text inside QMP's JSON tokens, read as QEMU 7.2 reads it.

QEMU keeps strings in *modified* UTF-8 and is stricter and looser than Python's codec
in a few places; the answers (values and error texts) must match byte for byte:

* ``\\xC0\\x80`` is U+0000; noncharacters (U+FDD0..U+FDEF and U+xFFFE/U+xFFFF) are
  refused like surrogates and overlong forms: ``invalid UTF-8 sequence in string``.
* ``\\uXXXX`` escapes: a high surrogate followed by ``\\u`` and a low one is a pair;
  any other result that is not a valid character is
  ``\\uXXXX is not a valid Unicode character``, quoting the escape as written (six
  characters, or twelve for a pair, cut at the end of the token).
* Text QEMU writes back from raw input (the token quoted in ``stray '...'``) replaces
  each invalid sequence by one U+FFFD, where a "sequence" is a lead byte and the
  continuation bytes that follow it up to the length the lead announces.
* Integers are 64-bit signed, else unsigned, else C's ``strtod``; floats are
  ``strtod``: correctly rounded, ``inf`` beyond the range. A number may be 64 MiB long
  (QEMU's token limit), so the long ones are reduced to what decides their value
  before Python converts them, in time linear in their length.

Everything here works on whole buffers with C-speed operations (codecs, ``re``,
``bytes`` methods) so that huge tokens cost a few passes over their bytes, never a
Python loop per byte; :class:`StringDecoder` takes a string token in pieces as it
arrives, so that its work is spread over the reads.
"""

from __future__ import annotations

import re

# -- modified UTF-8 ---------------------------------------------------------------------

_NONCHAR_CLASS = "\ufdd0-\ufdef" + "".join(
    f"{chr((plane << 16) | 0xFFFE)}{chr((plane << 16) | 0xFFFF)}" for plane in range(17))
#: noncharacters in decoded text (QEMU refuses them in input, replaces them in output)
_NONCHARACTER = re.compile(f"[{_NONCHAR_CLASS}]")
_MOD_NUL = b"\xc0\x80"
#: sequences QEMU cannot decode, one unit each (a lead byte and the continuation bytes
#: QEMU reads after it); lone continuation bytes and 0xFE/0xFF are left to the codec,
#: whose replacement already gives one U+FFFD per byte for them
_QEMU_INVALID_UNIT = re.compile(
    rb"[\xc0\xc1][\x80-\xbf]"                       # overlong 2-byte (C0 80 removed first)
    rb"|\xe0[\x80-\x9f][\x80-\xbf]"                 # overlong 3-byte
    rb"|\xed[\xa0-\xbf][\x80-\xbf]"                 # surrogates
    rb"|\xef\xb7[\x90-\xaf]|\xef\xbf[\xbe\xbf]"     # U+FDD0..U+FDEF, U+FFFE, U+FFFF
    rb"|\xf0[\x80-\x8f][\x80-\xbf]{2}"              # overlong 4-byte
    rb"|[\xf0-\xf4][\x8f\x9f\xaf\xbf]\xbf[\xbe\xbf]"  # U+nFFFE, U+nFFFF
    rb"|\xf4[\x90-\xbf][\x80-\xbf]{2}|[\xf5-\xf7][\x80-\xbf]{3}"  # beyond U+10FFFF
    rb"|[\xf8-\xfb][\x80-\xbf]{4}|[\xfc\xfd][\x80-\xbf]{5}"       # 5- and 6-byte forms
    # cut short: fewer continuation bytes than the lead announces
    rb"|[\xc0-\xdf](?![\x80-\xbf])|[\xe0-\xef][\x80-\xbf]?(?![\x80-\xbf])"
    rb"|[\xf0-\xf7][\x80-\xbf]{0,2}(?![\x80-\xbf])|[\xf8-\xfb][\x80-\xbf]{0,3}(?![\x80-\xbf])"
    rb"|[\xfc\xfd][\x80-\xbf]{0,4}(?![\x80-\xbf])")
#: a byte that always stands for one U+FFFD on its own in the codec's replacement
_ONE_REPLACEMENT = b"\xff"


def decode_strict(data: bytes) -> str | None:
    """``data`` as QEMU decodes a string's raw text; None where QEMU refuses it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if _MOD_NUL not in data:
            return None
        try:
            text = "\x00".join(part.decode("utf-8") for part in data.split(_MOD_NUL))
        except UnicodeDecodeError:
            return None
    if not text.isascii() and _NONCHARACTER.search(text):
        return None
    return text


def decode_lossy(data: bytes) -> str:
    """Raw bytes as QEMU's JSON writer renders them: one U+FFFD per invalid sequence."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        cleaned = _QEMU_INVALID_UNIT.sub(_ONE_REPLACEMENT, data.replace(_MOD_NUL, b"\x00"))
        return cleaned.decode("utf-8", "replace")
    if not text.isascii():
        text = _NONCHARACTER.sub("\ufffd", text)
    return text


def incomplete_tail(data: bytes, longest: int = 6) -> int:
    """Where a sequence that may continue in the next piece starts (``len(data)`` if
    none): a lead byte near the end followed by fewer continuation bytes than it
    announces. ``longest``: 4 for well-formed UTF-8, 6 for QEMU's units."""
    n = len(data)
    i = n - 1
    stop = max(n - longest, -1)
    while i > stop and 0x80 <= data[i] <= 0xBF:
        i -= 1
    if i <= stop or i < 0:
        return n
    lead = data[i]
    if lead < 0xC0 or lead > 0xFD:
        return n
    length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4 if lead < 0xF8 else \
        5 if lead < 0xFC else 6
    return i if n - i < length else n


# -- string tokens ------------------------------------------------------------------------

_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")
_SIMPLE_ESCAPES = {ord('"'): '"', ord("'"): "'", ord("\\"): "\\", ord("/"): "/",
                   ord("b"): "\b", ord("f"): "\f", ord("n"): "\n", ord("r"): "\r",
                   ord("t"): "\t"}
#: bytes an escape may need to be decided: ``\\uD83D\\uDE00``
_LONGEST_ESCAPE = 12


def _valid_codepoint(cp: int) -> bool:
    return (0 <= cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF
            and not 0xFDD0 <= cp <= 0xFDEF and (cp & 0xFFFE) != 0xFFFE)


def _hex4(data: bytes, pos: int) -> int:
    m = _HEX4.match(data, pos)
    return int(m.group(0), 16) if m else -1


class StringDecoder:
    """One string token's body, fed in pieces; its value or QEMU's error at the end.

    The lexer hands over the body (between the quotes) in pieces of any size; each
    piece is decoded at once, except for a sequence or escape that may continue in the
    next piece (carried over). The first error is kept (QEMU reports the first one in
    the string); from then on the pieces are only kept as the text a ``stray`` error
    would quote. :meth:`raw_text` is that text for the body so far.
    """

    __slots__ = ("_carry", "_error", "_parts", "_raw", "length", "quote")

    def __init__(self, quote: int) -> None:
        self.quote = quote
        self.length = 0
        self._carry = b""
        self._parts: list[str] = []
        #: the body as QEMU would quote it; entries shared with ``_parts`` where equal
        self._raw: list[str] = []
        self._error: str | None = None

    def add(self, piece: bytes) -> None:
        self.length += len(piece)
        data = self._carry + piece if self._carry else piece
        self._carry = b""
        if self._error is None:
            self._decode(data, final=False)
        else:
            self._keep_raw(data, final=False)

    def value(self) -> str | tuple[str]:
        """The string, or ``(error text,)`` (call once the body is complete)."""
        parts = self.parts()
        return parts if isinstance(parts, tuple) else "".join(parts)

    def parts(self) -> list[str] | tuple[str]:
        """The string in pieces, or ``(error text,)`` (call once the body is complete):
        a long string's pieces are joined by whoever can afford the copy."""
        if self._error is None:
            data, self._carry = self._carry, b""
            self._decode(data, final=True)
        if self._error is not None:
            return (self._error,)
        return self._parts

    def raw_text(self) -> str:
        """The body so far as QEMU quotes it in a ``stray`` error (lossy)."""
        return "".join(self.raw_parts())

    def raw_parts(self) -> list[str]:
        """:meth:`raw_text` in pieces."""
        if self._carry:
            # what precedes the carried bytes ends on a sequence boundary
            self._raw.append(decode_lossy(self._carry))
            self._carry = b""
        return self._raw

    # -- decoding ---------------------------------------------------------------------
    def _fail(self, desc: str, data: bytes, at: int, final: bool) -> None:
        self._error = desc
        self._keep_raw(data[at:], final)

    def _keep_raw(self, data: bytes, final: bool) -> None:
        cut = len(data) if final else incomplete_tail(data)
        if cut:
            self._raw.append(decode_lossy(data[:cut]))
        self._carry = data[cut:]

    def _decode(self, data: bytes, final: bool) -> None:
        n = len(data)
        i = 0
        parts, raw = self._parts, self._raw
        while i < n:
            j = data.find(b"\\", i)
            if j < 0:
                j = n
            if j > i:
                end = j
                if j == n and not final:
                    end = i + incomplete_tail(data[i:], 4) if data[-1] >= 0x80 else n
                if end > i:
                    text = decode_strict(data[i:end])
                    if text is None:
                        self._fail("invalid UTF-8 sequence in string", data, i, final)
                        return
                    parts.append(text)
                    raw.append(text)
                if end < j:  # an incomplete sequence at the end of the piece
                    self._carry = data[end:]
                    return
            if j >= n:
                return
            # an escape at j
            if not final and n - j < _LONGEST_ESCAPE and (j + 1 >= n or data[j + 1] == 0x75):
                self._carry = data[j:]
                return
            esc = data[j + 1]
            if esc != 0x75:  # not \u
                simple = _SIMPLE_ESCAPES.get(esc)
                if simple is None:
                    self._fail("invalid escape sequence in string", data, j, final)
                    return
                parts.append(simple)
                raw.append(decode_lossy(data[j:j + 2]))
                i = j + 2
                continue
            cp = _hex4(data, j + 2)
            end = j + 6
            if 0xD800 <= cp <= 0xDBFF and data[end:end + 2] == b"\\u":
                low = _hex4(data, end + 2)
                if 0xDC00 <= low <= 0xDFFF:
                    cp = 0x10000 + ((cp & 0x3FF) << 10) + (low & 0x3FF)
                    end += 6
                else:
                    cp = -1
            if not _valid_codepoint(cp):
                # QEMU quotes the escape from the token, which ends with the closing quote
                shown = (data[j:] + bytes([self.quote]))[:end - j]
                self._fail(f"{decode_lossy(shown)} is not a valid Unicode character",
                           data, j, final)
                return
            parts.append(chr(cp))
            raw.append(decode_lossy(data[j:end]))
            i = end


# -- numbers ------------------------------------------------------------------------------

_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
#: significant digits that always decide a double's rounding (767 can matter)
_SIGNIFICANT = 800
_FLOAT_PARTS = re.compile(rb"(-?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([-+]?)([0-9]+))?")


def integer_value(text: bytes) -> int | float:
    """A JSON integer token as QEMU reads it: int64, else uint64, else ``strtod``."""
    digits = len(text) - (text[0] == 0x2D)
    if digits <= 20:
        value = int(text)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    if digits > 400:   # beyond 10**399 every such number is out of a double's range
        return float("-inf") if text[0] == 0x2D else float("inf")
    return float_value(text)


def float_value(text: bytes) -> float:
    """``strtod`` of a JSON number token: correctly rounded, any length."""
    if len(text) <= 1000:
        return float(text)
    m = _FLOAT_PARTS.fullmatch(text)
    assert m is not None, "the lexer only passes JSON numbers"
    sign, whole, frac, exp_sign, exp_digits = m.groups()
    frac = frac or b""
    mantissa = whole + frac
    point = len(whole)                       # value = 0.mantissa * 10**point * 10**exp
    stripped = mantissa.lstrip(b"0")
    if not stripped:
        return -0.0 if sign else 0.0
    point -= len(mantissa) - len(stripped)
    significant = stripped.rstrip(b"0")
    if len(significant) > _SIGNIFICANT:
        # what follows the kept digits only matters as "more than nothing"
        significant = significant[:_SIGNIFICANT] + b"1"
    exponent = 0
    if exp_digits:
        exp_digits = exp_digits.lstrip(b"0") or b"0"
        if len(exp_digits) > 30:             # far beyond any double either way
            big = float("inf") if exp_sign != b"-" else 0.0
            return -big if sign else big
        exponent = int(exp_digits) * (-1 if exp_sign == b"-" else 1)
    total = point + exponent
    if total > 400:
        return float("-inf") if sign else float("inf")
    if total < -400:
        return -0.0 if sign else 0.0
    return float(b"%s0.%se%d" % (sign, significant, total))


def keyword_error(head: bytes) -> str:
    """QEMU's text for an unknown keyword: its message is cut at 1023 bytes (it is
    formatted into a 1024-byte buffer); ``head``: at least the keyword's first 1023
    bytes (keywords are ``[a-z]+``)."""
    return ("invalid keyword '" + head[:1024].decode("ascii") + "'")[:1023]


def string_value(token: bytes) -> str | tuple[str]:
    """A whole string token (quotes included) as a value, or ``(error text,)``."""
    body = token[1:-1]
    if b"\\" not in body:
        text = decode_strict(body)
        return text if text is not None else ("invalid UTF-8 sequence in string",)
    decoder = StringDecoder(token[0])
    decoder.add(body)
    return decoder.value()

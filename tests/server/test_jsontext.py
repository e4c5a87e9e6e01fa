"""Token text read as QEMU reads it: modified UTF-8, escapes, numbers of any length.

Expected values are what qemu-storage-daemon 7.2 answered for the same bytes (echoed
back as an ``id`` or quoted in an error); the wire differential test
(``test_wire_differential.py``) checks the same against a live daemon.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.server.jsonstream import JSONParseError, JSONStream
from engine.server.jsontext import (
    StringDecoder,
    decode_lossy,
    float_value,
    integer_value,
    string_value,
)


def test_modified_utf8_in_strings() -> None:
    assert string_value(b'"a\xc0\x80b"') == "a\x00b"          # QEMU's NUL
    assert string_value(b'"\\u0000"') == "\x00"
    for bad in (b'"\xef\xbf\xbe"', b'"\xef\xb7\x90"', b'"\xf0\x9f\xbf\xbf"',  # nonchars
                b'"\xed\xa0\x80"', b'"\xc1\xbf"', b'"\xf8\x88\x80\x80\x80"', b'"\xe4\xb8"'):
        assert string_value(bad) == ("invalid UTF-8 sequence in string",), bad


def test_unicode_escapes_quote_what_was_written() -> None:
    assert string_value(b'"\\ud83d\\ude00"') == "\U0001F600"
    assert string_value(b'"\\ufffe"') == ("\\ufffe is not a valid Unicode character",)
    assert string_value(b'"\\ud83f\\udffe"') == (
        "\\ud83f\\udffe is not a valid Unicode character",)
    assert string_value(b'"\\ud800\\u0041"') == ("\\ud800 is not a valid Unicode character",)
    assert string_value(b'"\\u00"') == ('\\u00" is not a valid Unicode character',)
    assert string_value(b"'\\u'") == ("\\u' is not a valid Unicode character",)


def test_lossy_text_is_one_replacement_per_qemu_sequence() -> None:
    # qemu-storage-daemon quoted '"\xed\xa0\x80\xc0\x80\xe0\x80a\x01' as
    # "\uFFFD\u0000\uFFFDa\u0001 (surrogate: one; C0 80: NUL; E0 80 cut short: one)
    assert decode_lossy(b"\xed\xa0\x80\xc0\x80\xe0\x80a\x01") == "\ufffd\x00\ufffda\x01"
    assert decode_lossy(b"\x80\x80\xfe\xff") == "\ufffd" * 4
    assert decode_lossy(b"\xf8\x88\x80\x80\x80x\xc3") == "\ufffdx\ufffd"
    assert decode_lossy(b"\xef\xbf\xbe\xf0\x9f\x98\x80\x80") == "\ufffd\U0001F600\ufffd"


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_a_string_decodes_the_same_in_any_pieces(body: bytes, cuts: list[int]) -> None:
    body = bytes(b for b in body if b >= 0x20 and b not in (0x22, 0xFE, 0xFF))
    if body.endswith(b"\\") and not body.endswith(b"\\\\"):
        body += b"n"
    def in_pieces() -> StringDecoder:
        decoder = StringDecoder(0x22)
        last = 0
        for cut in sorted({min(c, len(body)) for c in cuts}):
            decoder.add(body[last:cut])
            last = cut
        decoder.add(body[last:])
        return decoder

    assert in_pieces().value() == string_value(b'"' + body + b'"')
    assert in_pieces().raw_text() == decode_lossy(body)


def test_integers_of_any_length() -> None:
    assert integer_value(b"18446744073709551615") == (1 << 64) - 1
    assert integer_value(b"-9223372036854775808") == -(1 << 63)
    assert integer_value(b"-9223372036854775809") == -9.223372036854776e18
    assert integer_value(b"1" * 5000) == float("inf")          # qsd: "id": inf
    assert integer_value(b"-" + b"1" * 350) == float("-inf")    # qsd: "id": -inf
    assert integer_value(b"9" * 308) == float("9" * 308)


def test_long_floats_round_like_strtod() -> None:
    assert float_value(b"1." + b"1" * 5000 + b"e-5000") == 0.0   # qsd: "id": 0
    half = b"0." + b"0" * 1000 + b"5"
    assert float_value(half) == float(half)
    # just above / below the midpoint between 1 and the next double (1 + 2**-53, 54
    # significant digits): decided by a digit 1,000 places further
    midpoint = b"1.00000000000000011102230246251565404236316680908203125"
    assert float_value(midpoint + b"0" * 1000 + b"1") == 1 + 2 ** -52
    below = b"1.00000000000000011102230246251565404236316680908203124" + b"9" * 1000
    assert float_value(below) == 1.0
    assert float_value(b"-0." + b"0" * 3000) == -0.0


@given(st.from_regex(r"\A-?(0|[1-9][0-9]{0,1500})(\.[0-9]{1,1500})?([eE][-+]?[0-9]{1,5})?\Z",
                     fullmatch=True))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_float_value_is_python_float(text: str) -> None:
    data = text.encode()
    ours, python = float_value(data), float(data)
    assert ours == python and math.copysign(1, ours) == math.copysign(1, python), text


def test_every_split_of_a_stream_gives_the_same_messages() -> None:
    data = (b'{"execute": "x", "arguments": {"s": "a\\u00e9\\ud83d\\ude00\xc3\xa9", '
            b"'n': [1, -2.5e3, 12345678901234567890123, true, null]}} @x\n\"\x01"
            b'{"id": 1e400}')
    whole = JSONStream().feed(data)
    assert whole[-1] == {"id": float("inf")}
    assert JSONParseError("JSON parse error, stray '@'") in whole
    for step in (1, 2, 7, 64):
        stream = JSONStream()
        got: list[object] = []
        for i in range(0, len(data), step):
            got += stream.feed(data[i:i + step])
        assert got == whole, step


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_pieces_and_deadlines_never_change_the_messages(data: bytes, cuts: list[int]) -> None:
    whole = JSONStream().feed(data)
    stream = JSONStream()
    got: list[object] = []
    last = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        stream.push(data[last:cut])
        last = cut
        while stream.backlog:
            got += stream.pump(deadline=0.0)   # a deadline already passed: one step
    assert got == whole

"""Framing and parsing of the QMP input stream, as qemu-storage-daemon 7.2 does it.

The expected error texts below are the ones a real qemu-storage-daemon 7.2 answered
for the same input (the differential suite replays the bad-input cases against it).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.server import jsonstream
from engine.server.jsonstream import JSONParseError, JSONStream


def feed(*chunks: bytes, **limits: int) -> list[object]:
    stream = JSONStream(**limits)
    out: list[object] = []
    for chunk in chunks:
        out += stream.feed(chunk)
    return out


def errors(*descs: str) -> list[JSONParseError]:
    return [JSONParseError(d) for d in descs]


def test_messages_without_newline_and_back_to_back() -> None:
    assert feed(b'{"execute":"a"}{"execute":"b","id":2}') == [
        {"execute": "a"}, {"execute": "b", "id": 2}]


def test_message_split_at_every_byte() -> None:
    text = b'{"execute": "blockdev-add", "arguments": {"size": -12.5e3, "x": [true, null]}}'
    expected = [{"execute": "blockdev-add", "arguments": {"size": -12500.0,
                                                          "x": [True, None]}}]
    for cut in range(1, len(text)):
        assert feed(text[:cut], text[cut:]) == expected, cut
    stream = JSONStream()
    out: list[object] = []
    for i in range(len(text)):
        out += stream.feed(text[i:i + 1])
    assert out == expected


def test_a_number_or_keyword_waits_for_its_end() -> None:
    stream = JSONStream()
    assert stream.feed(b"42") == []
    assert stream.feed(b" ") == [42]
    assert stream.feed(b"nul") == []
    assert stream.feed(b"l\n") == [None]


@pytest.mark.parametrize(("data", "expected"), [
    (b"garbage\n", errors("JSON parse error, invalid keyword 'garbage'")),
    (b"@\n", errors("JSON parse error, stray '@'")),
    (b'{"a":tru}', errors("JSON parse error, invalid keyword 'tru'")),
    (b'{"execute":"q","id":"\\q"}', errors("JSON parse error, invalid escape sequence in string")),
    (b'{"execute":"q","id":01}', errors("JSON parse error, stray '01'",
                                        "JSON parse error, expecting value")),
    (b'{"execute":"q","id":1.}', errors("JSON parse error, stray '1.}'")),
    (b'{"execute":"q","id":True}', errors("JSON parse error, stray 'T'",
                                          "JSON parse error, expecting value")),
    (b'{"execute":"q","id":6,}', errors("JSON parse error, expecting value")),
    (b'{"execute" "q"}', errors("JSON parse error, missing : in object pair")),
    (b"{,}", errors("JSON parse error, expecting value")),
    (b"{1:2}", errors("JSON parse error, key is not a string in object")),
    (b'{"a":1 "b":2}', errors("JSON parse error, expected separator in dict")),
    (b"[1 2]", errors("JSON parse error, expected separator in list")),
    (b'{"a":1]', errors("JSON parse error, expected separator in dict")),
    (b"[1,]", errors("JSON parse error, expecting value")),
    (b'{"x":"a","x":"b"}', errors("JSON parse error, duplicate key")),
    (b'{"id":"\\ud800"}', errors("JSON parse error, \\ud800 is not a valid Unicode character")),
    (b'{"id":"\\u00"}', errors("JSON parse error, \\u00\" is not a valid Unicode character")),
    (b'{"id":"\xc3("}', errors("JSON parse error, invalid UTF-8 sequence in string")),
    (b"\xc3\xa9\n", errors("JSON parse error, stray '\ufffd'")),
    (b'{"id":"\xff"}', errors("JSON parse error, stray '\"\ufffd'",
                              "JSON parse error, expecting value")),
    (b'{"id":"a\tb"}', errors("JSON parse error, stray '\"a\t'",
                              "JSON parse error, expecting value")),
])
def test_bad_input_answers_like_qemu(data: bytes, expected: list[object]) -> None:
    assert feed(data) == expected


def test_non_objects_are_values_for_the_protocol_layer() -> None:
    assert feed(b'[1,2]"str" 12x ') == [
        [1, 2], "str", 12, JSONParseError("JSON parse error, invalid keyword 'x'")]


def test_recovery_skips_to_structural_or_control_character() -> None:
    # after '@' the rest up to '{' is skipped; the command is then read normally
    assert feed(b'@junk "s" {"execute":"q"}') == [
        JSONParseError("JSON parse error, stray '@'"), {"execute": "q"}]
    # a newline ends recovery too; spaces and tabs do not
    assert feed(b'@x "s"\n"t"') == [JSONParseError("JSON parse error, stray '@'"), "t"]


def test_single_quoted_strings_and_escapes() -> None:
    assert feed(b"{'execute': 'q', 'id': 'it\\'s \\u00e9\\ud83d\\ude00\\n'}") == [
        {"execute": "q", "id": "it's \u00e9\U0001F600\n"}]


def test_integers_beyond_64_bits_become_floats() -> None:
    assert feed(b"[18446744073709551615, 18446744073709551616, -9223372036854775809] ") == [
        [18446744073709551615, 1.8446744073709552e19, -9.223372036854776e18]]


def test_nesting_limit() -> None:
    [value] = feed(b"[" * 1024 + b"]" * 1024)
    depth = 0
    while value:
        [value] = value
        depth += 1
    assert (depth, value) == (1023, [])
    out = feed(b"[" * 1025 + b"]" * 1025)
    assert out[0] == JSONParseError("JSON nesting depth limit exceeded")
    # the rest of the input is still read (QEMU answers each stray ']'), then a
    # good message goes through again
    assert feed(b"[" * 1025 + b"]" * 1025 + b'{"execute":"q"}')[-1] == {"execute": "q"}
    assert feed(b"[[[[]]]]", max_nesting=3)[0] == JSONParseError(
        "JSON nesting depth limit exceeded")


def test_token_size_limit_at_its_edges() -> None:
    """QEMU's limit is 64 MiB; qemu-storage-daemon 7.2, sent one string token then a
    command, answered: 67,108,863 bytes (quotes included) a message; 67,108,864 and
    67,108,865 "JSON token size limit exceeded", the command answered after either.
    The same edges, scaled down to a 1,000-byte limit:"""
    after = b' {"execute":"q"}'
    assert feed(b'"' + b"a" * 997 + b'"' + after, max_token_size=1000) == ["a" * 997,
                                                                        {"execute": "q"}]
    for length in (1000, 1001):
        assert feed(b'"' + b"a" * (length - 2) + b'"' + after, max_token_size=1000) == [
            JSONParseError("JSON token size limit exceeded"), {"execute": "q"}], length
    # one byte more and the lexer drops the token as its 1,001st byte arrives, before
    # the closing quote: lexing starts afresh there, so that quote opens a string
    out = feed(b'"' + b"a" * 1000 + b'"' + after + b'"', max_token_size=1000)
    assert out == [JSONParseError("JSON token size limit exceeded"), " {",
                   JSONParseError("JSON parse error, invalid keyword 'execute'"), ":",
                   JSONParseError("JSON parse error, invalid keyword 'q'"), "}"]


def test_the_message_size_counts_every_token_plus_one() -> None:
    # 999 bytes of tokens in the message so far, then one more token: refused
    assert feed(b"[" + b'"' + b"a" * 996 + b'"' + b",1]", max_token_size=1000)[0] == \
        JSONParseError("JSON token size limit exceeded")
    assert feed(b"[" + b'"' + b"a" * 994 + b'"' + b"]", max_token_size=1000) == [["a" * 994]]


def test_long_keywords_and_numbers_are_cut_too() -> None:
    out = feed(b"x" * 1500 + b" ", max_token_size=1000)
    assert out == [JSONParseError("JSON token size limit exceeded"),
                   JSONParseError("JSON parse error, invalid keyword '" + "x" * 499 + "'")]
    out = feed(b"1" * 2500 + b" ", max_token_size=1000)
    assert out[:2] == [JSONParseError("JSON token size limit exceeded")] * 2
    assert out[2] == float("1" * 498)


def test_size_and_count_limits() -> None:
    # a string that never ends is cut off at the limit, not buffered forever
    stream = JSONStream(max_token_size=1000)
    assert stream.feed(b'{"a":"' + b"y" * 500) == []
    assert stream.feed(b"y" * 600) == [JSONParseError("JSON token size limit exceeded")]
    assert stream.pending < 1000
    many = b"[" + b"1," * 200 + b"1]"
    assert feed(many, max_token_count=100)[0] == JSONParseError(
        "JSON token count limit exceeded")
    assert feed(many + b'{"execute":"q"}', max_token_count=100)[-1] == {"execute": "q"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 80), 1 << 80)
    | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5), st.booleans(),
       st.sampled_from([None, 1, 2]))
@settings(max_examples=400, deadline=None, derandomize=True)
def test_whole_messages_read_at_once_equal_the_token_by_token_reading(
        value: dict[str, object], ascii_only: bool, indent: int | None) -> None:
    """A short ASCII message is read in one go by the standard library's decoder; the
    same bytes fed one at a time go token by token through QEMU's grammar. Both must
    give the same messages (values, errors) — including for what the standard decoder
    reads differently from QEMU (duplicate keys, ``NaN``, ``0e5``, escapes)."""
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    for data in (text.encode(), text.replace("1", "0e1").encode(),
                 text.replace("}", ', "a": 1, "a": 2}').encode(),
                 text.replace("0", "NaN").encode(), text.replace("a", "\\u0000").encode()):
        whole = JSONStream().feed(data + b" ")
        one_by_one = JSONStream()
        got: list[object] = []
        for i in range(len(data)):
            got += one_by_one.feed(data[i:i + 1])
        got += one_by_one.feed(b" ")
        assert got == whole, data


_PIECES = st.sampled_from([b"x" * 70_000, b"a", b"'", b'\\"', b"\\'", b"\\u00e9", b"\xc3\xa9",
                           b"\xf0\x9f\x98\x80", b"\\", b"\x01", b"\xfe", b" ", b'"'])


@given(st.sampled_from([b'"', b"'"]), st.lists(_PIECES, min_size=1, max_size=12),
       st.integers(1, 100_000))
@settings(max_examples=60, deadline=None, derandomize=True)
def test_plain_runs_read_by_translate_read_as_the_pattern_reads_them(
        quote: bytes, pieces: list[bytes], read: int) -> None:
    """Long runs of a string's plain bytes are found by ``bytes.translate``, the rest
    by the run's pattern: the values and errors are the pattern's alone."""
    data = b'{"execute": "x", "id": ' + quote + b"".join(pieces) + quote + b"}" + \
        b'{"execute": "after"}'
    chunks = [data[at:at + read] for at in range(0, len(data), read)]
    fast = feed(*chunks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonstream, "_PLAIN", {0x22: b"", 0x27: b""})   # never all plain
        assert feed(*chunks) == fast

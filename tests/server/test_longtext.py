"""Long strings are joined off the event loop, and joined right.

The server's stream hands a message with long strings over in pieces
(:class:`~engine.server.longtext.PendingMessage`); the worker joins them with the
interpreter lock released (:func:`~engine.server.longtext.join_released`). Whatever
the pieces hold — ASCII, Latin-1, BMP and astral characters, in any mix — the result
must be the very string ``str.join`` makes (same value, same storage, same hash), and
the completed message the very value the ordinary parse gives.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.server import longtext
from engine.server.jsonstream import JSONParseError, JSONStream
from engine.server.longtext import LONG_STRING, LongString, PendingMessage, join_released

_CHARS = st.sampled_from(["a", "~", "\xe9", "\xff", "\u0101", "\uffef", "\U0001f600", "\x00"])


def test_on_cpython_the_copy_runs_without_the_interpreter_lock() -> None:
    assert sys.implementation.name != "cpython" or longtext.RELEASES_GIL


@given(st.lists(st.tuples(_CHARS, st.integers(0, 300)), max_size=8))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_the_released_join_is_the_ordinary_join(pieces: list[tuple[str, int]]) -> None:
    parts = [char * count for char, count in pieces]
    joined, expected = join_released(parts), "".join(parts)
    assert joined == expected
    assert sys.getsizeof(joined) == sys.getsizeof(expected)   # the narrowest storage
    assert hash(joined) == hash(expected)


def _parse(data: bytes, *, defer: bool) -> list[object]:
    stream = JSONStream(defer_long_strings=defer)
    out: list[object] = []
    for start in range(0, len(data), 200_000):   # in reads, as from a socket
        out.extend(stream.feed(data[start:start + 200_000]))
    return out


def test_long_strings_come_in_pieces_and_complete_to_the_ordinary_value() -> None:
    long = "x" * LONG_STRING + "\xe9\U0001f600"
    encoded = long.encode()
    data = (b'{"execute": "query-version", "id": "' + encoded + b'", "arguments": {"a": ["'
            + encoded + b'", 1, "short"]}}"' + encoded + b'"{"execute": "q"}')
    ordinary = _parse(data, defer=False)
    deferred = _parse(data, defer=True)
    assert len(deferred) == len(ordinary) == 3
    assert isinstance(deferred[0], PendingMessage)
    assert isinstance(deferred[0].value["id"], LongString)
    assert isinstance(deferred[1], PendingMessage)      # a message that is one string
    assert deferred[2] == ordinary[2] == {"execute": "q"}
    assert [m.complete() for m in deferred[:2]] == ordinary[:2]
    assert ordinary[0]["id"] == long and ordinary[1] == long


def test_a_long_key_is_joined_at_once_and_duplicates_are_still_found() -> None:
    key = "k" * LONG_STRING
    member = b'"' + key.encode() + b'": 1'
    [message] = _parse(b"{" + member + b"}", defer=True)
    assert message == {key: 1}
    [duplicate] = _parse(b"{" + member + b", " + member + b"}", defer=True)
    assert getattr(duplicate, "desc", None) == "JSON parse error, duplicate key"


def test_short_strings_and_the_ordinary_stream_never_defer() -> None:
    short = b'{"id": "' + b"s" * (LONG_STRING - 1) + b'"}'
    assert not isinstance(_parse(short, defer=True)[0], PendingMessage)
    long = b'{"id": "' + b"s" * LONG_STRING + b'"}'
    assert not isinstance(_parse(long, defer=False)[0], PendingMessage)


def test_a_stray_byte_after_a_long_token_quotes_it_in_pieces() -> None:
    for token in (b'"' + "\xe9".encode() * LONG_STRING, b"-" + b"7" * LONG_STRING + b"."):
        data = b'{"id": ' + token + b'\x01{"execute": "q"}'
        ordinary = _parse(data, defer=False)
        deferred = _parse(data, defer=True)
        assert isinstance(deferred[0], JSONParseError)
        assert isinstance(deferred[0].desc, LongString)
        assert deferred[0].completed() == ordinary[0]
        assert ordinary[0].desc.startswith("JSON parse error, stray '" + token[:5].decode())
        assert ordinary[0].desc.endswith("\x01'")
        assert deferred[1:] == ordinary[1:] == [{"execute": "q"}]


@pytest.mark.parametrize("gather", ["process_vm_readv", "refused", "absent"])
def test_the_parts_are_gathered_right_however_the_copy_is_made(
        monkeypatch: pytest.MonkeyPatch, gather: str) -> None:
    """More parts than one system call takes, a narrower part between wider ones; and
    the same where ``process_vm_readv`` is refused (a sandbox) or missing."""
    if gather == "refused":
        monkeypatch.setattr(longtext, "_PROCESS_VM_READV", lambda *args: -1)
    elif gather == "absent":
        monkeypatch.setattr(longtext, "_PROCESS_VM_READV", None)
    parts = [chr(0x101 + n % 26) * (n % 97 + 1) for n in range(2 * longtext._IOV_MAX + 5)]
    parts[1500:1500] = ["ab", "\xe9" * 3, ""]
    joined, expected = join_released(parts), "".join(parts)
    assert joined == expected
    assert sys.getsizeof(joined) == sys.getsizeof(expected)
    assert hash(joined) == hash(expected)

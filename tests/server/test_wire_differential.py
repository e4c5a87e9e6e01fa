"""Property: the same bytes in, the same bytes out — the server beside qemu-storage-daemon.

Hypothesis writes QMP input the way a careless or hostile client might: commands with
``id``s and arguments of every JSON shape, written with either quote, any escapes,
odd spacing, numbers of any length; glued to fragments of tokens, control characters,
invalid UTF-8 and half messages. The same bytes go to a real qemu-storage-daemon 7.2
and to the bundled server (there cut into random pieces, as a network would deliver
them), and every line each writes back must be identical — replies, errors, echoed
ids, and how each recovers from bad input (see :mod:`tests.server.wire_peers`).

The commands are ones whose answers on an empty graph the engine shares with QEMU, so
that any difference is the server's: framing, JSON reading and writing, or the
protocol's checks.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz_settings
from tests.server.wire_peers import QsdWire, ServeWire
from tests.support.qemu import qemu_img

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

COMMANDS = ["query-jobs", "query-block-jobs", "query-block", "query-named-block-nodes",
            "no-such-command", "qmp_capabilities", "blockdev-del", "job-cancel"]
MEMBERS = ["execute", "arguments", "id", "exec-oob", "bogus"]
FRAGMENTS = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"'", b"\\", b"u", b"0", b"7", b"-",
             b".", b"e", b"E", b"+", b"tru", b"null", b"x", b" ", b"\n", b"\t", b"\r",
             b"\x00", b"\x01", b"\x1b", b"\x7f", b"\x80", b"\xc0\x80", b"\xc3\xa9",
             b"\xe4\xb8\xad", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xef\xbf\xbe",
             b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\\u00e9", b"\\ud83d\\ude00",
             b"\\ud800", b"\\uFDD0", b'"execute"', b'"id"', b'{"execute": "query-jobs", "id": ']


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[QsdWire, ServeWire]]:
    with QsdWire() as qsd, ServeWire() as serve:
        yield qsd, serve


scalars = (st.none() | st.booleans()
           | st.integers(-(1 << 70), 1 << 70)
           | st.integers(0, 3000).map(lambda n: int("9" * (n + 1)))
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


_SPACES = [b"", b"", b"", b" ", b"\n", b"\t", b"\r\n", b"  "]


def _render_string(rnd: random.Random, text: str) -> bytes:
    quote = rnd.choice(['"', "'"])
    escape_rate = rnd.choice([0.0, 0.2, 1.0])
    out = [quote]
    for ch in text:
        cp = ord(ch)
        if ch not in (quote, "\\") and cp >= 0x20 and rnd.random() >= escape_rate:
            out.append(ch)
        elif ch in "\"'\\/" and rnd.random() < 0.5:
            out.append("\\" + ch)
        elif cp > 0xFFFF:
            cp -= 0x10000
            out.append(f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04X}")
        else:
            out.append(f"\\u{cp:04x}")
    out.append(quote)
    return "".join(out).encode("utf-8", "surrogatepass")


def _render(rnd: random.Random, value: Any) -> bytes:
    """``value`` as JSON text, written the many ways QEMU accepts."""
    def sp() -> bytes:
        return rnd.choice(_SPACES)

    if isinstance(value, str):
        return _render_string(rnd, value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value).encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return rnd.choice([repr(value), format(value, ".17g"), f"{value:e}"]).encode()
    if isinstance(value, list):
        return b"[" + b",".join(sp() + _render(rnd, v) + sp() for v in value) + b"]"
    return b"{" + b",".join(sp() + _render_string(rnd, k) + sp() + b":" + sp()
                            + _render(rnd, v) + sp() for k, v in value.items()) + b"}"


@st.composite
def command(draw: Any) -> bytes:
    members: dict[str, Any] = {}
    for name in draw(st.permutations(MEMBERS)):
        if name == "execute" and draw(st.integers(0, 9)):
            members[name] = draw(st.sampled_from(COMMANDS))
        elif name == "arguments" and draw(st.booleans()):
            members[name] = draw(st.dictionaries(
                st.sampled_from(["flat", "node-name", "id", "x"]), values, max_size=2)
                | values)
        elif draw(st.booleans()) if name == "id" else draw(st.integers(0, 9)) == 0:
            members[name] = draw(values)
    return _render(draw(st.randoms(use_true_random=False)), members)


@st.composite
def garbage(draw: Any) -> bytes:
    return b"".join(draw(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=3),
                                  min_size=1, max_size=12)))


@st.composite
def conversation(draw: Any) -> tuple[bytes, list[int]]:
    parts = [b'{"execute": "qmp_capabilities"}'] if draw(st.integers(0, 3)) else []
    parts += draw(st.lists(command() | garbage(), min_size=1, max_size=6))
    data = b"".join(p + draw(st.sampled_from(_SPACES)) for p in parts)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=4))))
    return data, cuts


@fuzz_settings(short_examples=400)
@given(case=conversation())
def test_the_server_answers_byte_for_byte_like_qemu(
        peers: tuple[QsdWire, ServeWire], case: tuple[bytes, list[int]]) -> None:
    qsd, serve = peers
    data, cuts = case
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert serve.exchange(pieces) == qsd.exchange([data])


def test_names_that_are_not_utf8_are_written_as_qemu_writes_them(
        peers: tuple[QsdWire, ServeWire], tmp_path: Path) -> None:
    """A backing name in an image header that is not UTF-8 reaches an error text; QEMU
    writes each byte that is not UTF-8 as U+FFFD, never a lone surrogate."""
    image = tmp_path / "bad.qcow2"
    qemu_img("create", "-q", "-u", "-f", "qcow2", "-b", "bxx", "-F", "qcow2", str(image),
             "1M")
    with open(image, "r+b") as f:
        (offset,) = struct.unpack(">Q", f.read(16)[8:16])
        f.seek(offset)
        f.write(b"b\xff\xfe")
    add = json.dumps({"execute": "blockdev-add", "arguments": {
        "driver": "qcow2", "node-name": "bad", "read-only": True,
        "file": {"driver": "file", "filename": str(image)}}}).encode()
    qsd, serve = peers
    chunks = [b'{"execute": "qmp_capabilities"}', add]
    answers = qsd.exchange(chunks)
    assert b"\\uFFFD\\uFFFD" in answers[1], answers
    assert serve.exchange(chunks) == answers

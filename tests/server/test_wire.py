"""The wire serializer against bytes qemu-storage-daemon 7.2 was seen to write."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.qmp.qdict import qdict_sorted
from engine.server import wire

QEMU_VERSION = {"qemu": {"major": 7, "minor": 2, "micro": 22},
                "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}


def test_greeting_bytes() -> None:
    assert wire.encode(wire.greeting(QEMU_VERSION, ["oob"])) == (
        b'{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, '
        b'"package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}\r\n')


def test_envelopes_with_and_without_id() -> None:
    assert wire.encode(wire.success({})) == b'{"return": {}}\r\n'
    assert wire.encode(wire.success({}, "q", has_id=True)) == b'{"return": {}, "id": "q"}\r\n'
    assert wire.encode(wire.success(QEMU_VERSION, 9, has_id=True)) == (
        b'{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, '
        b'"package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": 9}\r\n')
    assert wire.encode(wire.failure("GenericError", "x", 5, has_id=True)) == (
        b'{"id": 5, "error": {"class": "GenericError", "desc": "x"}}\r\n')
    # an explicit null id is echoed too
    assert wire.encode(wire.failure("GenericError", "x", None, has_id=True)) == (
        b'{"id": null, "error": {"class": "GenericError", "desc": "x"}}\r\n')


def test_event_envelope() -> None:
    ev = {"event": "JOB_STATUS_CHANGE", "data": {"id": "j", "status": "created"},
          "timestamp": {"seconds": 1, "microseconds": 2}}
    assert wire.encode(wire.event(ev)) == (
        b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "JOB_STATUS_CHANGE", '
        b'"data": {"status": "created", "id": "j"}}\r\n')


def test_block_device_info_member_order_from_spec() -> None:
    schema_order = ["node-name", "drv", "backing_file", "backing_file_depth", "encrypted",
                    "ro", "detect_zeroes", "bps", "bps_rd", "bps_wr", "iops", "iops_rd",
                    "iops_wr", "cache", "write_threshold", "image", "file"]
    assert wire.member_order(dict.fromkeys(schema_order)) == [
        "iops_rd", "detect_zeroes", "image", "iops_wr", "ro", "node-name",
        "backing_file_depth", "drv", "iops", "bps_wr", "write_threshold", "backing_file",
        "encrypted", "bps", "bps_rd", "cache", "file"]


def test_already_ordered_dicts_are_not_sorted_again() -> None:
    # 'a' and 'A'-keys that share a bucket would swap on every sort; find two.
    from engine.qmp.qdict import qdict_bucket

    seen: dict[int, str] = {}
    pair = None
    for i in range(5000):
        key = f"k{i}"
        b = qdict_bucket(key)
        if b in seen:
            pair = (seen[b], key)
            break
        seen[b] = key
    assert pair is not None
    ordered = qdict_sorted(dict.fromkeys(pair, 0))
    assert list(ordered) == [pair[1], pair[0]]          # later insertion first
    text = wire.dumps(ordered)
    assert text.index(pair[1]) < text.index(pair[0])    # kept, not re-sorted


def test_json_pseudo_filename_order_matches_spec() -> None:
    opts = {"driver": "qcow2", "file": {"driver": "file", "filename": "/images/top.qcow2"},
            "backing": None}
    assert wire.dumps(opts) == ('{"backing": null, "driver": "qcow2", "file": '
                                '{"driver": "file", "filename": "/images/top.qcow2"}}')


def test_strings_escape_like_qemu() -> None:
    assert wire.dumps("a/b\x7f\U0001F600é\x01\x1f~") == (
        '"a/b\\u007F\\uD83D\\uDE00\\u00E9\\u0001\\u001F~"')
    assert wire.dumps('q"\\\b\f\n\r\t') == '"q\\"\\\\\\b\\f\\n\\r\\t"'
    assert wire.dumps("\x00") == '"\\u0000"'


def test_numbers_like_qemu() -> None:
    assert wire.dumps([1.0, 1e20, 1e-7, 2.5, 0.1, -0.0, float("inf"),
                       18446744073709551615, -5, True, False, None]) == (
        "[1, 1e+20, 9.9999999999999995e-08, 2.5, 0.10000000000000001, -0, inf, "
        "18446744073709551615, -5, true, false, null]")


def test_empty_containers_and_nesting() -> None:
    assert wire.dumps({"a": [], "b": {}}) in ('{"a": [], "b": {}}', '{"b": {}, "a": []}')
    assert wire.encode({"return": [[], [{}]]}) == b'{"return": [[], [{}]]}\r\n'


def test_every_character_escapes_alike_the_first_time_and_later() -> None:
    """The escape table fills as characters are met; the spelling must not depend on
    which characters came first (an astral character once spoiled another's entry)."""
    chars = ["\U000FAD70", "\U000EAD70", "\U0010FFFD", "\U00010000", "\u00e9", "\x7f", "\x00"]
    def utf16(c: str) -> str:
        data = c.encode("utf-16-be")
        return '"' + "".join(f"\\u{int.from_bytes(data[i:i + 2], 'big'):04X}"
                             for i in range(0, len(data), 2)) + '"'

    first = [wire.encode_string(c) for c in chars]
    assert first[0] == '"\\uDBAB\\uDD70"'
    assert first[:4] == [utf16(c) for c in chars[:4]]
    assert [wire.encode_string(c) for c in chars] == first
    assert [wire.encode_string(c) for c in reversed(chars)] == first[::-1]
    assert wire.encode_string("".join(chars)) == '"' + "".join(f[1:-1] for f in first) + '"'


def test_the_c_encoder_path_writes_what_the_python_writer_writes() -> None:
    """Replies that the standard library's C encoder may write (dicts in QEMU order,
    strings, integers) must come out exactly as :func:`wire.dumps` writes them."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70)
        | st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
        | st.sampled_from(["a\\u00e9", "\\\\u00e9", "\\", "\x7f", "\U0001F600"]),
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3).map(qdict_sorted)
        | st.dictionaries(st.text(max_size=3), inner, max_size=1),
        max_leaves=15)

    @given(values)
    @settings(max_examples=300, deadline=None, derandomize=True)
    def check(value: object) -> None:
        for message in (wire.success(value), wire.success(1, value, has_id=True),
                        wire.failure("GenericError", "x", value, has_id=True)):
            assert wire.encode(message) == wire.dumps(message).encode("ascii") + wire.EOL

    check()

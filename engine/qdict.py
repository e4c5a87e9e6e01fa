"""The iteration order of QEMU's QDict, which decides JSON member order.

QEMU keeps JSON objects in a 512-bucket hash table and walks it bucket by bucket;
inside a bucket the key inserted last comes first. The order therefore depends only
on the keys and their insertion order, and reproducing it lets the engine answer
exactly like QEMU wherever the order shows: member order of replies, and which of
several unexpected arguments an error names first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias, TypeVar, cast

#: A JSON value as QMP carries it (arguments, returns, events): arbitrary by nature, its
#: shape checked by the command's schema at run time, not by the type checker. The one
#: place ``Any`` stands for JSON; signatures use these names, not a bare ``Any``.
JSONValue: TypeAlias = Any
#: A JSON object: a command's arguments, a reply's ``return``, an event's ``data``.
JSONObject: TypeAlias = dict[str, JSONValue]

_T = TypeVar("_T")

_BUCKETS = 512
_MASK = 0xFFFFFFFF


def _c_string(key: str) -> bytes:
    """The bytes QEMU keeps for a key: modified UTF-8, where U+0000 is C0 80."""
    return key.encode().replace(b"\x00", b"\xc0\x80")


@functools.lru_cache(maxsize=4096)
def qdict_bucket(key: str) -> int:
    """QEMU's bucket for ``key`` (cached: replies reuse a small set of member names)."""
    data = _c_string(key)
    value = (0x238F13AF * len(data)) & _MASK
    for i, byte in enumerate(data):
        value = (value + (byte << ((i * 5) % 24))) & _MASK
    return ((1103515243 * value + 12345) & _MASK) % _BUCKETS


def qdict_order(keys: Iterable[str]) -> list[str]:
    """``keys`` (in insertion order) in the order QEMU iterates them."""
    return list(_order(tuple(keys)))


@functools.lru_cache(maxsize=4096)
def _order(keys: tuple[str, ...]) -> tuple[str, ...]:
    indexed = list(enumerate(keys))
    indexed.sort(key=lambda item: (qdict_bucket(item[1]), -item[0]))
    return tuple(k for _, k in indexed)


class QEMUOrdered(dict):  # type: ignore[type-arg]
    """A dict that already iterates in QEMU's member order.

    Sorting is not idempotent (two keys in one bucket swap places each time), so
    serializers that order plain dicts by the rule leave these as they are.
    """

    __slots__ = ()


def qdict_sorted(obj: _T) -> _T:
    """A copy of ``obj`` whose dicts (recursively) iterate in QEMU's member order."""
    if isinstance(obj, QEMUOrdered):  # a copy, in the order it already has
        return cast(_T, QEMUOrdered((k, qdict_sorted(v)) for k, v in obj.items()))
    if isinstance(obj, dict):
        return cast(_T, QEMUOrdered((k, qdict_sorted(obj[k])) for k in qdict_order(obj)))
    if isinstance(obj, list):
        return cast(_T, [qdict_sorted(v) for v in obj])
    return obj


_GHASH_PRIMES = (1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381)


def _g_str_hash(key: str) -> int:
    h = 5381
    for byte in _c_string(key):
        h = ((h << 5) + h + (byte if byte < 128 else byte - 256)) & _MASK
    return h if h >= 2 else 2


def ghash_order(keys: Iterable[str]) -> list[str]:
    """``keys`` in the iteration order of a GLib string hash table filled in that order.

    QEMU's input visitor tracks not-yet-visited members in such a table (filled in
    QDict order); of several unexpected members it reports the first in this order.
    GLib (2.74) places a key at ``(hash * 11) % prime`` in 32-bit arithmetic, probing
    by growing steps, and grows the table in place: each key is moved to its new
    place, evicting a key not moved yet, which moves next.
    """
    table: list[str | None] = [None] * 8
    shift = 3

    def index(key: str, mod: int) -> int:
        return ((_g_str_hash(key) * 11) & _MASK) % mod   # guint arithmetic wraps

    for count, key in enumerate(keys, start=1):
        mask = len(table) - 1
        i = index(key, _GHASH_PRIMES[shift])
        step = 0
        while table[i] is not None:
            step += 1
            i = (i + step) & mask
        table[i] = key
        if len(table) <= count + count // 16:
            old_size = len(table)
            shift = max(3, int(count * 1.333).bit_length())
            table += [None] * ((1 << shift) - old_size)
            _grow_in_place(table, old_size, _GHASH_PRIMES[shift], index)
    return [k for k in table if k is not None]


def _grow_in_place(table: list[str | None], old_size: int, mod: int,
                   index: Callable[[str, int], int]) -> None:
    mask = len(table) - 1
    moved = [False] * len(table)
    for i in range(old_size):
        key = table[i]
        if key is None or moved[i]:
            continue
        table[i] = None
        while key is not None:
            j = index(key, mod)
            step = 0
            while moved[j]:
                step += 1
                j = (j + step) & mask
            moved[j] = True
            table[j], key = key, table[j]


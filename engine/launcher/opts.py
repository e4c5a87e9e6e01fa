"""QEMU's option syntaxes: QemuOpts (``a=b,c=d``, ``,,`` for a comma, an implied first
key), keyval's dotted keys (``file.filename=x`` → nested objects) and the typing of
keyval strings by the QAPI schema (``on``/``off`` for booleans, sizes with suffixes).
"""

from __future__ import annotations

import json
from typing import Any

from engine.qmp.schema import Alternate, Bool, Int, ListOf, Number, QType, Struct, Union


class OptsError(ValueError):
    """A malformed option value; the text is QEMU's."""


def split_opts(text: str, implied: str | None = None) -> list[tuple[str, str]]:
    """``key=value`` pairs of a QemuOpts string, in order.

    A first element without ``=`` is the value of ``implied`` when the option has one
    (``-drive file``-less options have none); otherwise it is a flag (``key=on``).
    """
    pairs: list[tuple[str, str]] = []
    i, first = 0, True
    while i <= len(text):
        part, i = _take(text, i)
        if part == "" and i > len(text):
            break
        key, sep, value = _partition_unescaped(part)
        if not sep:
            if first and implied is not None:
                key, value = implied, part
            elif part:
                value = "on"
                if key.startswith("no") and len(key) > 2:
                    key, value = key[2:], "off"
            else:
                first = False
                continue
        pairs.append((key, value))
        first = False
    return pairs


def _take(text: str, start: int) -> tuple[str, int]:
    out = []
    i = start
    while i < len(text):
        ch = text[i]
        if ch == ",":
            if text[i + 1:i + 2] == ",":
                out.append(",")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), len(text) + 1


def _partition_unescaped(part: str) -> tuple[str, str, str]:
    key, sep, value = part.partition("=")
    return key, sep, value


def dotted_tree(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Nest dotted keys (``backing.file.filename``) into objects, as keyval does."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        here = tree
        for p in parts[:-1]:
            nxt = here.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise OptsError(f"Parameter '{key}' used inconsistently")
            here = nxt
        if isinstance(here.get(parts[-1]), dict):
            raise OptsError(f"Parameter '{key}' used inconsistently")
        here[parts[-1]] = value
    return tree


def parse_blockdev_arg(text: str) -> dict[str, Any]:
    """``-blockdev``'s argument: JSON when it starts with ``{``, else dotted keyval."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OptsError(f"JSON parse error, {exc.msg}") from None
        if not isinstance(value, dict):
            raise OptsError("JSON parse error, expected an object")
        return value
    return dotted_tree(split_opts(text))


_SIZE_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
                "p": 1 << 50, "e": 1 << 60}


def parse_bool(text: str, name: str) -> bool:
    """``on``/``off`` (and ``yes``/``no``/``true``/``false``, as keyval accepts)."""
    if text in ("on", "yes", "true", "y"):
        return True
    if text in ("off", "no", "false", "n"):
        return False
    raise OptsError(f"Parameter '{name}' expects 'on' or 'off'")


def parse_int(text: str, name: str, *, size: bool = False) -> int:
    """An integer (decimal or 0x hex); with ``size``, a k/M/G/T suffix as well."""
    t = text.strip()
    try:
        return int(t, 0)
    except ValueError:
        pass
    if size and t:
        num, suffix = t[:-1], t[-1].lower()
        if suffix in _SIZE_SUFFIX:
            try:
                return int(float(num) * _SIZE_SUFFIX[suffix])
            except ValueError:
                pass
    raise OptsError(f"Parameter '{name}' expects {'a size value' if size else 'an integer'}")


def typed(value: Any, schema: QType | None, name: str = "") -> Any:
    """Convert keyval strings in ``value`` to the types ``schema`` declares."""
    if schema is None:
        return value
    if isinstance(schema, Alternate):
        if isinstance(value, dict) and schema.obj is not None:
            return typed(value, schema.obj, name)
        return value
    if isinstance(value, str):
        if isinstance(schema, Bool):
            return parse_bool(value, name)
        if isinstance(schema, Int):
            return parse_int(value, name, size=True)
        if isinstance(schema, Number):
            try:
                return float(value)
            except ValueError:
                raise OptsError(f"Parameter '{name}' expects a number") from None
        return value
    if isinstance(value, dict) and isinstance(schema, Struct):
        fields = {m.name: m.type for m in schema.fields}
        if isinstance(schema, Union):
            variant = schema.variants.get(str(value.get(schema.discriminator)), ())
            fields.update({m.name: m.type for m in variant})
        return {k: typed(v, fields.get(k), _join(name, k)) for k, v in value.items()}
    if isinstance(value, dict) and isinstance(schema, ListOf):
        items = sorted(value.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else -1)
        return [typed(v, schema.element, _join(name, k)) for k, v in items]
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key

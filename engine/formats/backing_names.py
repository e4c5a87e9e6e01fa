"""Backing file names as QEMU reads them from an image header.

A header names its backing file by a string that is one of:

* an absolute path, used as it is;
* a relative path, joined to the directory part of the overlay's own file name *as it
  was given* (QEMU's ``path_combine``: not the working directory, not normalised), so
  ``sub/ov.qcow2`` naming ``../base.qcow2`` gives ``sub/../base.qcow2``;
* a name with a protocol prefix (``file:base.qcow2``, ``nbd:…``): a ``:`` before the
  first ``/``; ``file:`` names a host file;
* ``json:{…}``: the full options of the backing node, as QEMU writes when a node's
  filename cannot be a plain name (:func:`json_options` turns it back into options).
"""

from __future__ import annotations

import json
from typing import Any

JSON_PREFIX = "json:"


class BackingNameError(ValueError):
    """A backing name that cannot be turned into options; ``str()`` is QEMU's text."""


def has_protocol(name: str) -> bool:
    """QEMU's ``path_has_protocol``: a ``:`` comes before any ``/``."""
    colon = name.find(":")
    if colon < 0:
        return False
    slash = name.find("/")
    return slash < 0 or colon < slash


def path_combine(base: str, name: str) -> str:
    """QEMU's ``path_combine``: ``name`` relative to the directory part of ``base``."""
    if name.startswith("/"):
        return name
    start = 0
    if has_protocol(base):
        start = base.index(":") + 1
    slash = base.rfind("/")
    cut = max(start, slash + 1 if slash >= 0 else 0)
    return base[:cut] + name


def full_backing_filename(overlay_path: str, backing_name: str) -> str:
    """The backing name as seen from the overlay (``qemu-img info``'s full name)."""
    if not backing_name or backing_name.startswith("/") or has_protocol(backing_name):
        return backing_name
    return path_combine(overlay_path, backing_name)


def strip_file_protocol(name: str) -> str | None:
    """The host file a plain backing name means, or None for another protocol."""
    if not has_protocol(name):
        return name
    if name.startswith("file:"):
        return name[len("file:"):]
    return None


def json_options(name: str) -> dict[str, Any]:
    """The options a ``json:{…}`` name stands for, nested (dotted keys expanded).

    Raises :class:`BackingNameError` with QEMU's texts for text that is not a JSON
    object.
    """
    try:
        value = json.loads(name[len(JSON_PREFIX):])
    except (ValueError, RecursionError) as exc:
        raise BackingNameError(f"Could not parse the JSON options: {exc}") from exc
    if not isinstance(value, dict):
        raise BackingNameError("Invalid JSON object given")
    return crumple(value)


def options_of_name(name: str) -> dict[str, Any]:
    """The options a ``json:{…}`` name stands for, or none for a plain or unreadable name.

    For readers that only look inside a name (the permission rules, the planner's
    reopen options): a name QEMU could not parse names no options to them either.
    """
    if not name.startswith(JSON_PREFIX):
        return {}
    try:
        return json_options(name)
    except BackingNameError:
        return {}


def crumple(options: dict[str, Any]) -> dict[str, Any]:
    """Nested options from a dict that may use dotted keys (``file.filename``).

    Iterative: options may nest deeply. Dotted keys fill the nested dict of their
    prefix; a key given both ways keeps the nested value's members and adds the
    dotted ones.
    """
    root: dict[str, Any] = {}
    work: list[tuple[dict[str, Any], dict[str, Any]]] = [(options, root)]
    while work:
        src, dst = work.pop()
        for key, value in src.items():
            parts = key.split(".")
            target = dst
            for part in parts[:-1]:
                nxt = target.get(part)
                if not isinstance(nxt, dict):
                    nxt = target[part] = {}
                target = nxt
            last = parts[-1]
            if isinstance(value, dict):
                nested = target.get(last)
                if not isinstance(nested, dict):
                    nested = target[last] = {}
                work.append((value, nested))
            else:
                target[last] = value
    return root

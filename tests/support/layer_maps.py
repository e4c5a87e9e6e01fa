"""What a reader of a chain reads from which layer, as ``qemu-img map`` says it.

``qemu-img map --output=json`` gives, for every range of the top image, the depth of
the layer it comes from (``present`` false: no layer has it, it reads as zeros).
:func:`sources` turns that into ranges named by layer; :func:`changes` compares two
such readings the way a user would count them: the bytes whose layer differs, by the
layer no longer read and by what is read instead (None: zeros). The consequence
preview is checked against these numbers, which come from QEMU's own tool.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

from tests.support.qemu import qemu_img

Source = tuple[int, int, str | None]


def qemu_map(image: str | os.PathLike[str], fmt: str = "qcow2") -> list[dict[str, Any]]:
    """``qemu-img map`` of ``image`` (a path or a ``json:`` name), shared with the peer
    that has it open (``-U``)."""
    args = ["map", "--output=json", "-U"]
    if not str(image).startswith("json:"):
        args += ["-f", fmt]
    return json.loads(qemu_img(*args, str(image)).stdout)


def sources(entries: Sequence[dict[str, Any]], layers: Sequence[str]) -> list[Source]:
    """(start, end, layer or None) for each range of a map of the chain ``layers``."""
    return [(e["start"], e["start"] + e["length"],
             layers[e["depth"]] if e["present"] else None) for e in entries]


def changes(before: Sequence[Source], after: Sequence[Source]
            ) -> tuple[int, dict[str, int], dict[str | None, int]]:
    """Bytes whose layer differs; by the layer left, and by what is read instead."""
    cuts = sorted({p for s, e, _ in (*before, *after) for p in (s, e)})

    def at(runs: Sequence[Source], offset: int) -> str | None:
        for s, e, layer in runs:
            if s <= offset < e:
                return layer
        return None

    total, hidden, revealed = 0, {}, {}
    for a, b in itertools.pairwise(cuts):
        old, new = at(before, a), at(after, a)
        if old != new:
            total += b - a
            if old is not None:
                hidden[old] = hidden.get(old, 0) + b - a
            revealed[new] = revealed.get(new, 0) + b - a
    return total, hidden, revealed


def chain_name(*files: str, fmt: str = "qcow2") -> str:
    """A ``json:`` name opening ``files`` (top first) as one chain, backing by backing."""
    spec: Any = None
    for path in reversed(files):
        node: dict[str, Any] = {"driver": fmt, "file": {"driver": "file", "filename": path}}
        node["backing"] = spec
        spec = node
    return "json:" + json.dumps(spec)

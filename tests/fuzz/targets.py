"""Fuzz targets that take raw bytes, for the long runs (:mod:`tests.fuzz.run`).

A target decodes its input bytes into a structured case (for images: a seed and
a list of :class:`~tests.fuzz.images.Mutation`), runs the property, and raises
on a violation. Because the input is plain bytes, the same target runs under a
coverage-guided fuzzer (atheris) or on random bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.fuzz.images import (
    INTERESTING_U32,
    INTERESTING_U64,
    Mutation,
    exercise,
    materialise,
    regions,
    seeds,
)

_SEEDS = seeds()
_SEED_BYTES = {p: p.read_bytes() for p in _SEEDS}


class Bytes:
    """Reads numbers from the input; past its end every read is 0."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> int:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return int.from_bytes(chunk.ljust(n, b"\0"), "big")

    def pick(self, seq: list | tuple):  # type: ignore[no-untyped-def,type-arg]
        return seq[self.take(1) % len(seq)]

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def decode_image_case(data: bytes) -> tuple[Path, list[Mutation]]:
    """Bytes -> (seed, mutations). Each mutation uses ~12 input bytes."""
    b = Bytes(data)
    seed = b.pick(_SEEDS)
    raw = _SEED_BYTES[seed]
    areas = regions(raw)
    names = sorted(areas)
    muts: list[Mutation] = []
    for _ in range(1 + b.take(1) % 4):
        lo, hi = areas[b.pick(names)]
        kind = b.take(1) % 8
        span = max(hi - lo, 1)
        offset = lo + b.take(3) % span
        if kind == 0:
            muts.append(Mutation(offset, 0, 0))
        elif kind in (1, 2):
            muts.append(Mutation(offset, 1, b.take(1)))
        elif kind == 3:
            muts.append(Mutation(offset, 4, b.pick(INTERESTING_U32)))
        elif kind == 4:
            muts.append(Mutation(offset, 4, b.take(4)))
        elif kind == 5:
            muts.append(Mutation(offset - (offset - lo) % 8, 8, b.pick(INTERESTING_U64)))
        elif kind == 6:
            muts.append(Mutation(offset - (offset - lo) % 8, 8, b.take(8)))
        else:
            near = (b.take(2) * 512) % (2 * len(raw) + 512)
            muts.append(Mutation(offset - (offset - lo) % 8, 8, near | (b.take(1) << 56)))
    return seed, muts


def formats_target(data: bytes) -> None:
    """Mutate a seed image as ``data`` says and check the readers' property."""
    seed, muts = decode_image_case(data)
    work = Path(tempfile.mkdtemp(prefix="bgfuzz-"))
    try:
        exercise(materialise(seed, muts, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def describe_image_case(data: bytes) -> str:
    seed, muts = decode_image_case(data)
    return f"{seed.name} with {muts}"


TARGETS = {"formats": (formats_target, describe_image_case)}


def decode_planner_case(data: bytes) -> tuple[Any, list[tuple[int, int, int, bool]]]:
    from tests.fuzz.planner_cases import CHAINS, GraphRecipe, StackRecipe

    b = Bytes(data)
    stacks = tuple(StackRecipe(b.take(1) % len(CHAINS), bool(b.take(1) & 1),
                               bool(b.take(1) & 1), bool(b.take(1) & 1))
                   for _ in range(1 + b.take(1) % 4))
    intents = [(b.take(1) % 7, b.take(1), b.take(1), bool(b.take(1) & 1))
               for _ in range(1 + b.take(1) % 5)]
    return GraphRecipe(stacks), intents


def planner_target(data: bytes) -> None:
    """Build a graph on the engine, plan intents, execute accepted plans (see planner_cases)."""
    from tests.fuzz.planner_cases import check_case

    recipe, intents = decode_planner_case(data)
    work = Path(tempfile.mkdtemp(prefix="bgfuzz-"))
    try:
        check_case(recipe, intents, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def describe_planner_case(data: bytes) -> str:
    recipe, intents = decode_planner_case(data)
    return f"{recipe} intents {intents}"


TARGETS["planner"] = (planner_target, describe_planner_case)


def decode_qmp_case(data: bytes, root: Path) -> list[bytes]:
    import json

    from tests.fuzz.qmp_cases import mutate, raw_chunks, templates

    b = Bytes(data)
    temps = templates(root)
    chunks = [b'{"execute": "qmp_capabilities"}'] if b.take(1) % 4 else []
    for _ in range(1 + b.take(1) % 6):
        kind, msg = b.take(1) % 4, b.pick(temps)
        if kind == 0:
            chunks.append(json.dumps(msg).encode())
        elif kind in (1, 2):
            choices = [b.take(2) for _ in range(b.take(1) % 9)]
            chunks.append(json.dumps(mutate(msg, choices)).encode())
        else:
            chunks.append(raw_chunks(b.take(1), b.take(2), json.dumps(msg).encode()))
    return chunks


def qmp_target(data: bytes) -> None:
    """A hostile client's chunks against a fresh in-process server (see qmp_cases)."""
    from tests.fuzz.qmp_cases import check_case

    work = Path(tempfile.mkdtemp(prefix="bgfuzz-"))
    try:
        check_case(decode_qmp_case(data, work), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def describe_qmp_case(data: bytes) -> str:
    return repr(decode_qmp_case(data, Path("/ROOT")))[:500]


TARGETS["qmp"] = (qmp_target, describe_qmp_case)

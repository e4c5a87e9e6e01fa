"""Fuzz the image readers: mutated headers, L1/L2/refcount tables, extensions, truncation.

Property (see :func:`tests.fuzz.images.exercise`): opening, describing, mapping,
reading and writing a mutated image either works or raises the formats' typed
``ImageError`` — never another exception, never a hang.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz_settings, time_limit
from tests.fuzz.images import (
    INTERESTING_U32,
    INTERESTING_U64,
    Mutation,
    exercise,
    fresh_dir,
    materialise,
    regions,
    seeds,
)

SEEDS = seeds()
_counter = itertools.count()

#: seconds one example may take (open + info + reads + one write of a small image)
EXAMPLE_LIMIT = 20.0


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> list[Mutation]:
    """1–4 mutations aimed at one structure each."""
    areas = regions(data)
    out = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(sorted(areas)))
        lo, hi = areas[name]
        kind = draw(st.sampled_from(["byte", "u32", "u64", "u64", "truncate"]))
        if kind == "truncate":
            out.append(Mutation(draw(st.integers(0, max(hi - 1, 0))), 0, 0))
            continue
        width = {"byte": 1, "u32": 4, "u64": 8}[kind]
        offset = draw(st.integers(lo, max(lo, hi - width)))
        if width == 8 and name in ("l1", "l2", "reftable", "refblock"):
            offset -= (offset - lo) % 8     # whole table entries
        if kind == "u64":
            value = draw(st.one_of(st.sampled_from(INTERESTING_U64),
                                   st.integers(0, len(data) * 2).map(lambda v: v & ~0x1FF),
                                   st.integers(0, 2**64 - 1)))
        elif kind == "u32":
            value = draw(st.one_of(st.sampled_from(INTERESTING_U32), st.integers(0, 2**32 - 1)))
        else:
            value = draw(st.integers(0, 255))
        out.append(Mutation(offset, width, value))
    return out


@st.composite
def mutated_seed(draw: st.DrawFn) -> tuple[Path, list[Mutation]]:
    seed = draw(st.sampled_from(SEEDS))
    return seed, draw(mutations(seed.read_bytes()))


def test_corpus_is_present_and_valid(tmp_path: Path) -> None:
    """The unmutated seeds open cleanly (a fuzz run on a broken corpus proves nothing)."""
    assert len(SEEDS) >= 10
    for seed in SEEDS:
        work = fresh_dir(tmp_path, next(_counter))
        with time_limit(EXAMPLE_LIMIT, seed.name):
            exercise(materialise(seed, [], work))


@pytest.mark.engine_writes_damaged_images
@pytest.mark.slow
@fuzz_settings(short_examples=250)
@given(case=mutated_seed())
def test_mutated_images_fail_only_with_image_errors(tmp_path_factory: pytest.TempPathFactory,
                                                     case: tuple[Path, list[Mutation]]) -> None:
    seed, muts = case
    work = fresh_dir(tmp_path_factory.getbasetemp(), next(_counter))
    path = materialise(seed, muts, work)
    with time_limit(EXAMPLE_LIMIT, f"{seed.name} with {muts}"):
        exercise(path)


@pytest.mark.engine_writes_damaged_images
@pytest.mark.slow
@fuzz_settings(short_examples=40)
@given(seed=st.sampled_from(SEEDS), blob=st.binary(min_size=0, max_size=600),
       at=st.integers(0, 4096))
def test_random_bytes_spliced_into_images(tmp_path_factory: pytest.TempPathFactory, seed: Path,
                                          blob: bytes, at: int) -> None:
    """Unstructured garbage over a valid image (headers, extension area, first tables)."""
    work = fresh_dir(tmp_path_factory.getbasetemp(), next(_counter))
    muts = [Mutation(at + i, 1, b) for i, b in enumerate(blob)]
    path = materialise(seed, muts, work)
    with time_limit(EXAMPLE_LIMIT, f"{seed.name} with {len(blob)} bytes at {at}"):
        exercise(path)

"""Fuzz the QMP server: mutated commands and hostile bytes from one client.

Properties (see :mod:`tests.fuzz.qmp_cases`): every message written is valid QMP,
no reply is an internal error, another client keeps getting correct answers, and
new clients can connect afterwards.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz_settings, time_limit
from tests.fuzz.images import fresh_dir
from tests.fuzz.qmp_cases import check_case, mutate, raw_chunks, templates

_counter = itertools.count()
N_TEMPLATES = 22

chunk_specs = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, N_TEMPLATES - 1),
              st.lists(st.integers(0, 1000), max_size=8), st.integers(0, 10_000)),
    min_size=1, max_size=6)


def build_chunks(root, negotiate: bool, specs) -> list[bytes]:  # type: ignore[no-untyped-def]
    temps = templates(root)
    out = [b'{"execute": "qmp_capabilities"}'] if negotiate else []
    for kind, t, choices, n in specs:
        msg = temps[t % len(temps)]
        if kind == 0:
            out.append(json.dumps(msg).encode())
        elif kind in (1, 2):
            out.append(json.dumps(mutate(msg, choices)).encode())
        else:
            out.append(raw_chunks(n, n // 7, json.dumps(msg).encode()))
    return out


@pytest.mark.slow
@fuzz_settings(short_examples=100)
@given(negotiate=st.booleans(), specs=chunk_specs)
def test_server_survives_hostile_clients(tmp_path_factory: pytest.TempPathFactory,
                                         negotiate: bool, specs: list) -> None:  # type: ignore[type-arg]
    root = fresh_dir(tmp_path_factory.getbasetemp(), next(_counter))
    chunks = build_chunks(root, negotiate, specs)
    with time_limit(60, "qmp case"):
        check_case(chunks, root)


def test_every_template_is_accepted_somewhere(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The templates are real commands (a fuzzer fed only typos proves little)."""
    root = fresh_dir(tmp_path_factory.getbasetemp(), next(_counter))
    temps = templates(root)
    assert len(temps) == N_TEMPLATES
    chunks = [b'{"execute": "qmp_capabilities"}'] + [json.dumps(t).encode() for t in temps]
    assert check_case(chunks, root) >= len(temps)

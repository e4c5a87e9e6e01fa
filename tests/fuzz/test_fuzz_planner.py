"""Fuzz the planner against the engine: random graphs, random intents.

See :mod:`tests.fuzz.planner_cases` for the properties (preflight-accepted plans
never hit a rule on the engine; a failed command changes nothing; executed plans
leave the graph as expected).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz_settings, time_limit
from tests.fuzz.images import fresh_dir
from tests.fuzz.planner_cases import CHAINS, GraphRecipe, StackRecipe, check_case

_counter = itertools.count()

recipes = st.builds(
    GraphRecipe,
    st.lists(st.builds(StackRecipe, st.integers(0, len(CHAINS) - 1), st.booleans(),
                       st.booleans(), st.booleans()), min_size=1, max_size=4)
    .map(tuple))
intents = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40), st.integers(0, 40),
                             st.booleans()), min_size=1, max_size=5)


@pytest.mark.slow
@fuzz_settings(short_examples=120)
@given(recipe=recipes, todo=intents)
def test_plans_that_pass_preflight_do_not_hit_rules(tmp_path_factory: pytest.TempPathFactory,
                                                    recipe: GraphRecipe,
                                                    todo: list[tuple[int, int, int, bool]]
                                                    ) -> None:
    work = fresh_dir(tmp_path_factory.getbasetemp(), next(_counter))
    with time_limit(60, "planner case"):
        check_case(recipe, todo, work)


def test_a_known_case_executes_plans() -> None:
    """The harness really executes plans (not only refusals): a stream and a snapshot."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        recipe = GraphRecipe((StackRecipe(0, True, False, False),))
        out = check_case(recipe, [(4, 0, 2, False), (3, 0, 0, False), (1, 0, 0, False)],
                         Path(d))
    assert [o.refused for o in out] == [False, False, False], out
    assert all(o.failed is None and o.steps for o in out), out

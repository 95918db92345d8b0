"""Every candidate source passes the source contract."""

from __future__ import annotations

from recsys.candidates.sources import CollaborativeSource, RebuySource, TrendingSource
from recsys.testing.stages import SourceContract


class TestCollaborative(SourceContract):
    stage = CollaborativeSource(n=20)


class TestTrending(SourceContract):
    stage = TrendingSource(n=10)


class TestRebuy(SourceContract):
    stage = RebuySource(n=5)


def test_trending_is_the_reference_selection_as_a_set() -> None:
    """The shop's ranking gives exactly the items of ``top_allowed`` over the chosen items,
    with and without ties at the cut."""
    import numpy as np

    from recsys.candidates.sources import top_allowed
    from recsys.testing.stages import contract_block, contract_model

    model, block = contract_model(), contract_block()
    ctx = model.ctx
    trend, _ = ctx.trending(block.states[0].as_of)
    assert (trend > 0).sum() > 5
    rng = np.random.default_rng(3)
    ties = 0
    for n in (1, 3, 5, 8, 10_000):
        allowed = rng.random((len(block), len(ctx.catalog.items))) < rng.uniform(0.2, 1.0)
        got = TrendingSource(n=n)(ctx, block, allowed)
        for p, st in enumerate(block.states):
            t, _ = ctx.trending(st.as_of)
            want = top_allowed(t, allowed[p] & (t > 0), n)
            assert set(got[p].tolist()) == set(want.tolist())
            ties += int(len(want) == n and (t[allowed[p] & (t > 0)] == t[want].min()).sum() > 1)
    assert ties > 0, "the ties at the cut were exercised"

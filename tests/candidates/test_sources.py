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


def test_trending_takes_the_most_chosen_allowed_items_ties_in_catalogue_order() -> None:
    """The ``n`` allowed items chosen most in the window; at a tie at the cut, the first in
    catalogue order (never an arbitrary pick among equals)."""
    import numpy as np

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
            idx = np.flatnonzero(allowed[p] & (t > 0))
            want = idx[np.lexsort((idx, -t[idx]))][:n]  # by count, then catalogue index
            assert got[p].tolist() == want.tolist()
            if len(want) == n and len(idx) > n:
                ties += int(t[idx[np.lexsort((idx, -t[idx]))][n]] == t[want[-1]])
    assert ties > 0, "the ties at the cut were exercised"

"""The stronger peers: RP3beta (a graph model) and the unconstrained ranker."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.candidates.sources import block_candidates
from recsys.config import RecommenderConfig
from recsys.evaluation.baselines import PipelineSystem
from recsys.evaluation.peers import RP3beta, UnconstrainedRanker
from recsys.features.context import UserBlock


@pytest.fixture(scope="module")
def data(small_shop):
    return small_shop.interactions, small_shop.items, small_shop.users


def test_rp3beta_walk_probabilities_and_exclusions(data) -> None:
    train, items, users = data
    m = RP3beta(alpha=1.0, beta=0.0, neighbors=10_000).fit(train, items, users)
    # beta = 0, alpha = 1: a row of W is a probability distribution over a 2-step walk's end
    # (minus the step back to the item itself, which the diagonal removes)
    row_sums = m.W_.sum(axis=1)
    assert np.all(row_sums <= 1 + 1e-9)
    some = sorted(train["user_id"].unique())[:20]
    recs = m.recommend_all(some, 10)
    for u in some:
        seen = set(train.loc[train["user_id"] == u, "item_id"])
        assert recs[u] and not seen & set(recs[u])


def test_rp3beta_keeps_only_the_strongest_neighbours(data) -> None:
    m = RP3beta(neighbors=5).fit(*data)
    assert (np.count_nonzero(m.W_, axis=1) <= 5).all()


def test_the_unconstrained_ranker_ranks_the_pipelines_own_candidates(data) -> None:
    cfg = RecommenderConfig(purpose="evaluation")
    cfg.ranker.max_iter = 30
    peer = UnconstrainedRanker(cfg).fit(*data)
    assert peer.gbm_.interaction_cst is None  # trees may combine features
    ctx = peer.model_.ctx
    h = ctx.history
    # customers the model knows (consenting, with a history)
    users = [u for u in sorted(data[0]["user_id"].unique()) if h.users.get(u) >= 0][:15]
    recs = peer.recommend_all(users, 10)
    idx = [h.users.get(u) for u in users]
    states = [ctx.user_state(i, as_of=int(h.ts[h.indptr[i + 1] - 1])) for i in idx]
    cands = block_candidates(ctx, UserBlock.build(ctx, states), cfg.candidates)
    for u, c in zip(users, cands, strict=True):
        assert recs[u]
        assert set(recs[u]) <= set(ctx.catalog.items.ids[c])
    # the same features, ranked differently from the additive pipeline
    ours = PipelineSystem(cfg).fit(*data).recommend_all(users, 10)
    assert any(ours[u] != recs[u] for u in users)


def test_the_unconstrained_ranker_obeys_the_runs_exclusions(data) -> None:
    cfg = RecommenderConfig(purpose="evaluation")
    cfg.ranker.max_iter = 20
    peer = UnconstrainedRanker(cfg).fit(*data)
    u = sorted(data[0]["user_id"].unique())[0]
    first = peer.recommend_all([u], 5)[u]
    again = peer.recommend_all([u], 5, exclude={u: frozenset(first[:2])})[u]
    assert not set(first[:2]) & set(again)

"""Re-ranking: the FA*IR guarantee holds, stages are deterministic and can be switched off."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.rerank.algorithms import fair_table, fair_topk, mmr, satisfies_fair
from recsys.rerank.stages import RerankConfig


def test_fair_table_matches_the_binomial_quantile() -> None:
    # p = 0.5, alpha = 0.1: P(X <= 0 | 4, .5) = 0.0625 < 0.1 <= P(X <= 1) -> one protected by rank 4
    assert fair_table(10, 0.5, 0.1) == (0, 0, 0, 1, 1, 1, 2, 2, 3, 3)


@pytest.mark.parametrize("seed", range(20))
def test_fair_topk_guarantee_on_random_lists(seed: int) -> None:
    rng = np.random.default_rng(seed)
    protected = rng.random(60) < rng.uniform(0.05, 0.5)
    order = fair_topk(protected, 10, 0.4, 0.1)
    assert len(set(order.tolist())) == len(order) == 10
    if protected.sum() >= 10:
        assert satisfies_fair(protected[order], 0.4, 0.1)
    # within each group, the original order is kept
    for g in (True, False):
        kept = [i for i in order if protected[i] == g]
        assert kept == sorted(kept)


def test_mmr_trade_off_one_is_relevance_order() -> None:
    rng = np.random.default_rng(1)
    scores = np.sort(rng.random(30))[::-1]
    sim = rng.random((30, 30))
    assert mmr(scores, (sim + sim.T) / 2, 30, 1.0).tolist() == list(range(30))


@pytest.mark.parametrize("stop_at", [None, 3, 7])
def test_a_block_orders_each_list_as_that_list_alone(stop_at: int | None) -> None:
    """A block gives each list the order it gets alone, with a similarity matrix or with item
    similarities computed as the steps read them, and when a prefix stops lists early; the
    two sources give the same order when the matrix is the computed one."""
    from recsys.rerank.algorithms import ItemSimilarity, Prefix, mmr_many

    rng = np.random.default_rng(0 if stop_at is None else stop_at)
    n_lists, width, k = 9, 40, 25
    lengths = rng.integers(0, width + 1, size=n_lists)
    lengths[0] = width
    scores = np.sort(rng.random((n_lists, width)), axis=1)[:, ::-1].copy()
    sim = rng.random((n_lists, width, width))
    sim = (sim + sim.transpose(0, 2, 1)) / 2
    unit = rng.normal(size=(200, 16)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    spec = ItemSimilarity(unit, rng.integers(-1, 4, size=(200, 2)), 0.5)
    items = np.stack([rng.choice(200, size=width, replace=False) for _ in range(n_lists)])
    stops = rng.integers(1, stop_at + 1, size=n_lists) if stop_at else lengths

    def stop(b: slice) -> Prefix:
        return Prefix.first(stops[b], width)

    for source, per in ((sim, lambda b: sim[b]), ((spec, items), lambda b: (spec, items[b]))):
        block = mmr_many(scores, source, lengths, k, 0.6, stop=stop(slice(None)))
        for b in range(n_lists):
            one = slice(b, b + 1)
            alone = mmr_many(scores[one], per(one), lengths[one], k, 0.6, stop=stop(one))
            assert alone[0].tolist() == block[b].tolist()
            placed = block[b][block[b] >= 0]
            assert len(placed) == min(k, lengths[b], stops[b])
            assert len(set(placed.tolist())) == len(placed)
    computed = mmr_many(scores, (spec, items), lengths, k, 0.6)
    matrix = spec.matrix(items)
    assert computed.tolist() == mmr_many(scores, matrix, lengths, k, 0.6).tolist()


def test_mmr_takes_what_the_formula_says() -> None:
    """Each step takes the free position with the largest ``lam * relevance - (1 - lam) * max
    similarity to placed`` (relevance min-max scaled, the max from 0), the first on a tie."""
    from recsys.rerank.algorithms import mmr

    rng = np.random.default_rng(5)
    for n, lam in [(12, 0.3), (25, 0.7), (3, 0.5)]:
        scores = rng.random(n) * 10
        sim = rng.random((n, n)) * 2 - 0.5
        sim = (sim + sim.T) / 2
        rel = (scores - scores.min()) / (scores.max() - scores.min())
        placed: list[int] = []
        max_sim = np.zeros(n)
        for _ in range(n):
            value = np.where(
                np.isin(np.arange(n), placed), -np.inf, lam * rel - (1 - lam) * max_sim
            )
            j = int(np.argmax(value))
            placed.append(j)
            max_sim = np.maximum(max_sim, sim[j])
        assert mmr(scores, sim, n, lam).tolist() == placed


def test_fair_guarantee_holds_on_every_recommended_list(fitted, small_shop) -> None:
    fair = fitted.model_.config.rerank.stages[-1]
    assert fair.kind == "fair"
    group = fitted.model_.groups[fair.group]
    ids = fitted.model_.ctx.catalog.items
    checked = 0
    for u in small_shop.users["user_id"]:
        recs = fitted.recommend(u, 10)
        if not recs.personalized:
            continue
        flags = group[ids.index(recs.item_ids)]
        assert satisfies_fair(flags, fair.proportion, fair.significance), recs.item_ids
        checked += 1
    assert checked > 100


def test_rerank_is_deterministic(fitted, small_shop) -> None:
    for u in small_shop.users["user_id"].iloc[:40]:
        assert fitted.recommend(u, 10) == fitted.recommend(u, 10)


def test_turning_stages_off_reproduces_the_previous_ranking(fitted, small_shop) -> None:
    base = fitted.model_.config.rerank
    assert [s.kind for s in base.stages] == ["mmr", "fair"]
    no_div = base.model_copy(update={"stages": base.stages[1:]})
    both_off = base.model_copy(update={"stages": []})
    moved = 0
    for u in small_shop.users["user_id"].iloc[::3]:
        ranker_only = fitted.recommend(u, 10, rerank=False)
        assert fitted.recommend(u, 10, rerank=both_off) == ranker_only
        assert all(r.reason.stage in ("ranker", "popularity") for r in ranker_only)
        full = fitted.recommend(u, 10)
        moved += sum(r.reason.stage != "ranker" for r in full if full.personalized)
        # fairness alone on top of the ranker = FA*IR applied to the ranker's order
        fair_only = fitted.recommend(u, 10, rerank=no_div)
        if fair_only.personalized:
            assert [r.reason.stage for r in fair_only if r.reason.stage == "diversity"] == []
    assert moved > 0


def test_moved_items_say_so_and_keep_their_evidence(fitted, small_shop) -> None:
    seen = set()
    for u in small_shop.users["user_id"]:
        for r in fitted.recommend(u, 10):
            if r.reason.stage == "diversity":
                assert r.reason.text.startswith("Something different")
                assert r.reason.evidence[-1].fact == "diversity"
            elif r.reason.stage == "fairness":
                assert r.reason.text.startswith("A less-known pick you may like")
                assert r.reason.evidence[-1].fact == "item_group"
            seen.add(r.reason.stage)
    assert {"ranker", "diversity", "fairness"} <= seen


def test_calibration_matches_the_user_mix_and_says_so(fitted, small_shop) -> None:
    from recsys.evaluation.metrics import miscalibration

    cal = RerankConfig.model_validate({"stages": [{"kind": "calibration", "trade_off": 0.5}]})
    cats = {
        i: set(c.split("|"))
        for i, c in zip(small_shop.items["item_id"], small_shop.items["category"], strict=True)
    }
    ids = fitted.model_.ctx.catalog.items.ids
    base, calibrated, history = {}, {}, {}
    for u in small_shop.users["user_id"].iloc[::2]:
        a, b = fitted.recommend(u, 10, rerank=False), fitted.recommend(u, 10, rerank=cal)
        if not a.personalized:
            continue
        ctx = fitted.model_.ctx
        history[u] = [
            str(ids[i]) for i in ctx.user_state(ctx.history.users.get(fitted.key_of(u))).items
        ]
        base[u], calibrated[u] = a.item_ids, b.item_ids
        for r in b:
            if r.reason.stage == "calibration":
                assert r.reason.text.startswith("To match your usual mix: ")
                assert [e.fact for e in r.reason.evidence].count("category_share") == 1
    assert miscalibration(calibrated, history, cats) < 0.8 * miscalibration(base, history, cats)


def test_an_unknown_item_group_is_an_error_not_a_silent_switch_off(fitted, small_shop) -> None:
    from recsys.errors import ConfigError

    typo = RerankConfig.model_validate({"stages": [{"kind": "fair", "group": "long_tial"}]})
    u = small_shop.users["user_id"].iloc[0]
    with pytest.raises(ConfigError, match="long_tial"):
        fitted.recommend(u, 10, rerank=typo)


def test_stages_are_a_discriminated_list_that_round_trips() -> None:
    from recsys.config import RecommenderConfig

    text = """
[rerank]
depth = 50
[[rerank.stages]]
kind = "calibration"
trade_off = 0.7
[[rerank.stages]]
kind = "fair"
group = "small_sellers"
proportion = 0.3
"""
    cfg = RecommenderConfig.from_toml(text)
    assert [type(s).__name__ for s in cfg.rerank.stages] == ["Calibration", "FairTopK"]
    assert RecommenderConfig.from_toml(cfg.to_toml()) == cfg


@pytest.mark.parametrize("k", [1, 3, 5, 10])
@pytest.mark.parametrize("trade_off", [0.2, 0.6, 0.95])
def test_mmr_stopping_where_fair_stops_reading_changes_nothing(
    fitted, k: int, trade_off: float
) -> None:
    """MMR stops once FA*IR's prefix is placed (``consumer_reads``) and hands on that prefix:
    FA*IR then returns what it returns after the full MMR order, for lists of every length
    and protected share; at the end of the stages, the top ``k`` are the full order's."""
    from recsys.rerank.stages import MMR, FairTopK, RerankInput, consumer_reads
    from recsys.types import ItemList

    model = fitted.model_
    inp = RerankInput(ctx=model.ctx, groups=model.groups)
    ids = model.ctx.catalog.items.ids
    rng = np.random.default_rng(k)
    lists = []
    for _ in range(80):
        n = int(rng.integers(1, 80))
        items = rng.choice(len(ids), size=n, replace=False)
        lists.append(ItemList.from_indices(items, ids, score=np.sort(rng.random(n))[::-1]))
    mmr, fair = MMR(trade_off=trade_off), FairTopK(group="long_tail")
    states = [None] * len(lists)  # neither stage reads the user's state
    ordered = mmr.many(inp, states, lists, k)
    fair_full = fair.many(inp, states, ordered, k)
    # all lists at once: each leaves the steps when its own prefix is placed
    block = mmr.many(inp, states, lists, k, reads=consumer_reads(inp, [fair], k))
    for got, want in zip(fair.many(inp, states, block, k), fair_full, strict=True):
        assert got.items.tolist() == want.items.tolist()
    for lst, mmr_full, want in zip(lists, ordered, fair_full, strict=True):
        # one list at a time, so that each stops as early as it can
        early = mmr.many(inp, [None], [lst], k, reads=consumer_reads(inp, [fair], k))
        got = early[0].items.tolist()
        assert len(set(got)) == len(got) and set(got) <= set(lst.items.tolist())
        assert fair.many(inp, [None], early, k)[0].items.tolist() == want.items.tolist()
        end = mmr.many(inp, [None], [lst], k, reads=consumer_reads(inp, [], k))
        assert end[0].items[:k].tolist() == mmr_full.items[:k].tolist()


@pytest.mark.parametrize("n_categories", [1, 3, 10])
def test_item_similarity_is_factor_cosine_and_category_jaccard(n_categories: int) -> None:
    """Each entry is ``factor_weight`` * cosine + the rest * Jaccard of the categories (within
    float32 rounding of the factors' own product), the matrix is symmetric, and a list's matrix
    is the same whichever lists are computed with it."""
    from types import SimpleNamespace

    from recsys.rerank.stages import similarity, similarity_many

    rng = np.random.default_rng(n_categories)
    unit = rng.normal(size=(300, 128)).astype(np.float32)  # the model's factor size
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    codes = np.full((300, n_categories), -1)  # an item's distinct categories, then padding
    for row in codes:
        size = int(rng.integers(0, n_categories + 1))
        row[:size] = rng.choice(n_categories + 4, size=size, replace=False)
    ctx = SimpleNamespace(
        collab=SimpleNamespace(item_unit_=unit), catalog=SimpleNamespace(category_codes=codes)
    )
    width = 41
    items = np.stack([rng.choice(300, size=width, replace=False) for _ in range(7)])
    whole = similarity_many(ctx, items, 0.3)
    for b in range(7):
        assert np.array_equal(similarity(ctx, items[b], 0.3), whole[b])
        np.testing.assert_array_equal(whole[b], whole[b].T)
        u, c = unit[items[b]], codes[items[b]]
        sets = [set(x[x >= 0].tolist()) for x in c]
        jac = np.array([[len(p & q) / len(p | q) if p | q else 0.0 for q in sets] for p in sets])
        want = 0.3 * (u @ u.T).astype(np.float64) + 0.7 * jac
        np.testing.assert_allclose(whole[b], want, rtol=0, atol=1e-6)

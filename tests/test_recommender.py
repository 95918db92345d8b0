"""The public API: what a shop's backend relies on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recsys.data.synthetic import END
from recsys.errors import NotFittedError
from recsys.privacy.consent import SQLiteConsentStore
from recsys.recommender import Recommender


def active_users(shop, n: int = 5) -> list[str]:
    consenting = set(shop.users.loc[shop.users["consent_personalization"], "user_id"])
    counts = shop.interactions["user_id"].value_counts()
    return [u for u in counts.index if u in consenting][:n]


def test_unfitted_use_is_a_named_error() -> None:
    with pytest.raises(NotFittedError):
        Recommender().recommend("u1")


def test_recommendations_are_ranked_immutable_and_k_long(fitted, small_shop) -> None:
    u = active_users(small_shop)[0]
    recs = fitted.recommend(u, k=7, rerank=False)  # re-ranking may reorder by other criteria
    assert len(recs) == 7 and recs.personalized
    assert [r.rank for r in recs] == list(range(1, 8))
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recs[0].score = 1.0  # type: ignore[misc]
    assert fitted.recommend(u, k=7, rerank=False) == recs  # deterministic


def test_filters_seen_out_of_stock_and_excluded(fitted, small_shop) -> None:
    ctx = fitted.model_.ctx
    rebuyable, _ = ctx.rebuy
    out_of_stock = set(small_shop.items.loc[~small_shop.items["in_stock"], "item_id"])
    for u in active_users(small_shop, 10):
        st = ctx.user_state(ctx.history.users.get(fitted.key_of(u)))
        seen = {ctx.catalog.items.ids[i] for i in st.items if not rebuyable[i]}
        first = fitted.recommend(u, 10)
        banned = first.item_ids[:3]
        again = fitted.recommend(u, 10, exclude=banned)
        for recs in (first, again):
            assert not set(recs.item_ids) & seen
            assert not set(recs.item_ids) & out_of_stock
        assert not set(again.item_ids) & set(banned)


def test_rebought_items_cite_the_last_purchase(fitted, small_shop) -> None:
    found = 0
    for u in active_users(small_shop, 60):
        for r in fitted.recommend(u, 10):
            for e in r.reason.evidence:
                if e.fact == "bought_before":
                    found += 1
                    assert "Time to restock? You last bought it on" in r.reason.text
    assert found > 0


def test_user_without_consent_gets_honest_non_personalized_list(fitted, small_shop) -> None:
    no = small_shop.users.loc[~small_shop.users["consent_personalization"], "user_id"].tolist()
    assert len(no) >= 2
    lists = [fitted.recommend(u, 10) for u in no]
    # identical whatever their history: nothing of theirs is read
    assert all(lst.item_ids == lists[0].item_ids for lst in lists)
    for lst in lists:
        assert not lst.personalized
        for r in lst:
            assert (
                "not personalized: you chose not to receive personalized recommendations"
                in r.reason.text
            )
            assert r.reason.stage == "popularity" and r.attributions == ()
    # and they are in no training matrix
    keys = {fitted.key_of(u) for u in no}
    assert not keys & set(fitted.model_.ctx.history.users.ids)


def test_opt_out_applies_at_next_request(small_shop, pseudonymizer) -> None:
    rec = Recommender(pseudonymizer=pseudonymizer, consent=SQLiteConsentStore.in_memory())
    rec.fit(small_shop, now=END)
    u = active_users(small_shop)[0]
    assert rec.recommend(u).personalized
    rec.set_consent(u, False)
    after = rec.recommend(u)
    assert not after.personalized
    rec.set_consent(u, True)
    assert rec.recommend(u).personalized


def test_unknown_user_and_no_profiling(fitted, small_shop) -> None:
    cold = fitted.recommend("someone-new", 5)
    assert not cold.personalized and len(cold) == 5
    u = active_users(small_shop)[0]
    plain = fitted.recommend(u, 5, personalized=False)
    assert not plain.personalized
    assert plain.item_ids == fitted.recommend("another-stranger", 5, personalized=False).item_ids


def test_explain_any_item(fitted, small_shop) -> None:
    u = active_users(small_shop)[0]
    item = small_shop.items["item_id"].iloc[0]
    e = fitted.explain(u, item)
    assert e.item_id == item and e.reason.text
    assert abs(fitted.model_.ranker.base + sum(v for _, v in e.attributions) - e.score) < 1e-9
    with pytest.raises(KeyError):
        fitted.explain(u, "no-such-item")


def test_request_context(fitted, small_shop) -> None:
    u = active_users(small_shop)[0]
    plain = fitted.recommend(u, 10)
    basket = plain.item_ids[:2]
    with_basket = fitted.recommend(u, 10, context={"basket": basket})
    assert not set(with_basket.item_ids) & set(basket)
    later = fitted.recommend(u, 10, context={"time": "2026-12-24"})
    assert later == fitted.recommend(u, 10, as_of="2026-12-24")
    with pytest.raises(ValueError, match="unknown context key"):
        fitted.recommend(u, context={"page": "home"})
    with pytest.raises(ValueError, match="once"):
        fitted.recommend(u, as_of="2026-12-24", context={"time": "2026-12-24"})


def test_concurrent_requests_match_sequential_ones(fitted, small_shop) -> None:
    from concurrent.futures import ThreadPoolExecutor

    users = small_shop.users["user_id"].tolist()[:80]
    sequential = [fitted.recommend(u, 10) for u in users]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda u: fitted.recommend(u, 10), users))
    assert concurrent == sequential


def test_item_lists_are_read_only() -> None:
    from recsys.types import ItemList

    lst = ItemList.from_indices(np.array([2, 0, 1]), np.array(["a", "b", "c"], dtype=object),
                                score=np.array([0.3, 0.2, 0.1]))  # fmt: skip
    for arr in (lst.items, lst.ids, lst.column("score")):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = arr[-1]
    top = lst.take([2, 0]).with_column("stage", np.array(["ranker", "fairness"], dtype=object))
    assert top.ids.tolist() == ["b", "c"] and top.column("score").tolist() == [0.1, 0.3]
    assert "stage" not in lst  # the original list is unchanged
    with pytest.raises(ValueError, match="entries"):
        lst.with_column("bad", np.zeros(2))


def test_blocks_and_single_requests_agree(pseudonymizer, tmp_path) -> None:
    """1,000 users scored together, in blocks, get exactly what one call per user gets: items,
    scores, reasons with their evidence, stages."""
    from recsys.data.synthetic import ShopSpec, make_shop

    shop = make_shop(ShopSpec(n_users=1000, n_items=200, seed=11))
    store = SQLiteConsentStore(tmp_path / "state.sqlite")
    rec = Recommender(pseudonymizer=pseudonymizer, consent=store).fit(shop, now=END)
    users = shop.users["user_id"].tolist()
    single = [rec.recommend(u, 10) for u in users]
    assert rec.recommend_many(users, 10) == single
    assert sum(r.personalized for r in single) > 500 and any(not r.personalized for r in single)


def test_the_fitted_model_pickles_and_serves_the_same(fitted, small_shop) -> None:
    """A worker process gets the model by pickling it (features travel by name)."""
    import pickle

    from recsys.pipeline.pipeline import Pipeline
    from recsys.types import Query

    model = pickle.loads(pickle.dumps(fitted.model_))
    users = active_users(small_shop, 20)
    here = fitted.recommend_many(users, k=10)
    there = Pipeline(model, fitted.consent_store_, pseudonymizer=fitted.pseudonymizer)
    assert there.run([Query(u, 10) for u in users]) == here

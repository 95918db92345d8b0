"""Promotions within their cap and labeled; a new item reaches a matching customer honestly."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pandas as pd
import pytest

from recsys.data.synthetic import END
from recsys.errors import ConfigError
from recsys.evaluation.promotions import promotion_cost
from recsys.model.train import minimized
from recsys.rerank.stages import RerankConfig
from recsys.testing.facts import FactChecker
from recsys.types import Stage


def promo_config(items: list[str], **kw) -> RerankConfig:
    return RerankConfig.model_validate(
        {
            "stages": [
                {"kind": "mmr"},
                {"kind": "promotions", "items": items, **kw},
                {"kind": "fair", "group": "long_tail"},
            ]
        }
    )


@pytest.fixture(scope="module")
def checker(rules_rec, rules_shop):
    model = rules_rec.model_
    md = minimized(rules_shop, model.config, model.policy, now=END,
                   pseudonymizer=rules_rec.pseudonymizer)  # fmt: skip
    return md


def test_promoted_slots_stay_within_the_cap_and_say_so(rules_rec, rules_shop, checker) -> None:
    users = rules_shop.users["user_id"].tolist()[:60]
    # promote items the ranker itself rarely shows, so the stage has something to move in
    shown = Counter(r.item_id for recs in rules_rec.recommend_many(users, 10) for r in recs)
    in_stock = rules_shop.items.loc[rules_shop.items["in_stock"], "item_id"].tolist()
    tail = sorted(in_stock, key=lambda i: (shown[i], i))[:30]
    cfg = promo_config(tail, max_share=0.2, pins={tail[0]: 1})
    fc = FactChecker(checker, rules_rec.model_.policy, promoted=frozenset(tail))
    placed = 0
    for recs in rules_rec.recommend_many(users, 10, rerank=cfg):
        if not recs.personalized:
            assert not any(r.reason.stage == Stage.PROMOTION for r in recs)
            continue
        promo = [r for r in recs if r.reason.stage == Stage.PROMOTION]
        assert len(promo) <= 2, [r.item_id for r in promo]
        placed += len(promo)
        for r in promo:
            assert r.item_id in tail and r.reason.text.startswith("Promoted by the shop")
            assert "best matches" not in r.reason.text
            assert not fc.check(rules_rec.key_of(recs.user_id), r), fc.check(recs.user_id, r)
        pinned = [r for r in recs if r.item_id == tail[0]]
        if pinned and pinned[0].reason.stage == Stage.PROMOTION:
            assert pinned[0].rank == 1 or recs[0].reason.stage == Stage.FAIRNESS
    assert placed > 0


def test_promotions_never_override_consent_and_label_when_allowed(rules_rec, rules_shop) -> None:
    tail = rules_shop.items["item_id"].tolist()[-5:]
    no = rules_shop.users.loc[~rules_shop.users["consent_personalization"], "user_id"].iloc[0]
    plain = rules_rec.recommend(no, 10, rerank=promo_config(tail))
    assert not plain.personalized and not any("Promoted" in r.reason.text for r in plain)
    shown = rules_rec.recommend(no, 10, rerank=promo_config(tail, non_personalized=True))
    promo = [r for r in shown if r.item_id in tail and "Promoted by the shop" in r.reason.text]
    assert 0 < len(promo) <= 2
    assert all("not personalized" in r.reason.text for r in promo)


def test_promotions_after_fairness_are_refused(rules_rec) -> None:
    bad = RerankConfig.model_validate(
        {"stages": [{"kind": "fair"}, {"kind": "promotions", "items": ["I000001"]}]}
    )
    with pytest.raises(ConfigError, match="before the fairness stage"):
        rules_rec.recommend("U0000001", 5, rerank=bad)


def test_promotion_cost_is_reported(rules_rec, rules_shop) -> None:
    tail = rules_shop.items["item_id"].tolist()[-30:]
    users = rules_shop.users["user_id"].tolist()[:60]
    a = {r.user_id: r.item_ids for r in rules_rec.recommend_many(users, 10)}
    with_promo = rules_rec.recommend_many(users, 10, rerank=promo_config(tail, max_share=0.3))
    b = {r.user_id: r.item_ids for r in with_promo}
    truth = {u: set(v) for u, v in a.items() if v}  # the unpromoted lists themselves
    cost = promotion_cost(a, b, truth, set(tail), k=10)
    assert cost["ndcg_with"] <= cost["ndcg_without"] == pytest.approx(1.0)
    assert cost["ndcg_with"] < cost["ndcg_without"] and cost["relative_drop"] > 0
    placed = sum(r.reason.stage == Stage.PROMOTION for recs in with_promo for r in recs)
    assert 0 < placed <= 3 * len(with_promo)
    assert cost["promoted_share"] >= placed / sum(len(v) for v in b.values())


def test_a_new_item_added_after_training_reaches_a_matching_customer(
    rules_rec, rules_shop, checker
) -> None:
    model = rules_rec.model_
    cat = model.ctx.catalog
    users = [u for u in rules_shop.users["user_id"] if rules_rec.has_consent(u)]
    from recsys.explain.rules import category_counts

    # the customer with the most items in one category, and that category
    best = None
    for u in users[:80]:
        st = model.ctx.user_state(model.ctx.history.users.get(rules_rec.key_of(u)))
        counts = category_counts(model.ctx, st)
        if counts:
            c, n = max(counts.items(), key=lambda kv: kv[1])
            if best is None or n > best[2]:
                best = (u, c, n)
    u, category, _ = best
    listed = pd.Timestamp(model.cutoff, unit="s", tz="UTC") - pd.Timedelta(days=3)
    new = pd.DataFrame({
        "item_id": ["NEW001"], "title": ["Brand-new Arrival"], "category": [category],
        "brand": ["Newco"], "price": [float(pd.Series(cat.price).median())],
        "seller_id": ["S99999"], "in_stock": [True], "created_at": [listed.floor("s")],
        "origin": ["Kenya"],
    })  # fmt: skip
    updated = model.with_items(new)
    assert model.ctx.catalog.items.get("NEW001") < 0  # the loaded model is left as it was
    rec = type(rules_rec)(updated.config, policy=updated.policy,
                          pseudonymizer=rules_rec.pseudonymizer,
                          consent=rules_rec.consent_store_).use(updated)  # fmt: skip
    slot = RerankConfig.model_validate({"stages": [{"kind": "mmr"}, {"kind": "new_items"}]})
    recs = rec.recommend(u, 10, rerank=slot)
    hit = [r for r in recs if r.item_id == "NEW001"]
    assert hit, [r.item_id for r in recs]
    assert hit[0].reason.stage == Stage.NEW_ARRIVAL
    assert hit[0].reason.text.startswith(f"New in {category}, which you often choose")
    md = dataclasses.replace(checker, items=pd.concat([checker.items, new], ignore_index=True))
    fc = FactChecker(md, updated.policy)
    assert not fc.check(rec.key_of(u), hit[0])
    assert rec.recommend(u, 10, filters='origin != "Kenya"').item_ids.count("NEW001") == 0

"""Reasons are true: every stated fact checks out, and only positive attributions speak."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recsys.data.synthetic import END
from recsys.privacy import Policy, minimize
from recsys.recommender import Recommender
from recsys.testing.facts import FactChecker


@pytest.fixture(scope="module")
def checker(small_shop, pseudonymizer):
    md = minimize(
        small_shop, Policy.default(), "recommendations", now=END, pseudonymizer=pseudonymizer
    )
    return FactChecker(md, Policy.default())


def test_every_recommendation_has_a_reason(fitted, small_shop) -> None:
    n = 0
    for u in small_shop.users["user_id"]:
        for r in fitted.recommend(u, 10):
            assert r.reason.text.strip()
            n += 1
    assert n >= 10 * len(small_shop.users) * 0.9


def test_stated_facts_check_out(fitted, small_shop, checker) -> None:
    users = small_shop.users["user_id"].iloc[::4]
    false, checked = [], 0
    for u in users:
        key = fitted.key_of(u)
        for r in fitted.recommend(u, 10):
            checked += len(r.reason.evidence)
            false += checker.check(key, r)
    assert checked > 200
    assert false == []


def test_only_positive_attributions_are_named(fitted, small_shop) -> None:
    for u in small_shop.users["user_id"].iloc[::5]:
        for r in fitted.recommend(u, 10):
            attr = dict(r.attributions)
            if r.reason.stage == "popularity":  # ranked by a count, not by the model
                assert r.reason.features == () and attr == {}
                continue
            assert all(attr[f] > 0 for f in r.reason.features), (r.reason, attr)
            assert len(r.reason.features) == len(r.reason.attributions)


def test_scores_are_base_plus_attributions(fitted, small_shop) -> None:
    u = small_shop.users["user_id"].iloc[5]
    for r in fitted.recommend(u, 10):
        total = fitted.model_.ranker.base + sum(v for _, v in r.attributions)
        assert abs(total - r.score) < 1e-9


def test_reasons_never_reveal_sensitive_categories(small_shop, pseudonymizer) -> None:
    items = small_shop.items.copy()
    items["category"] = items["category"].str.replace("Beauty > Skincare", "Health > Pharmacy")
    health = set(items.loc[items["category"].str.contains("Health"), "item_id"])
    assert health
    shop = small_shop.__class__(small_shop.interactions, items, small_shop.users, small_shop.audit)
    rec = Recommender(pseudonymizer=pseudonymizer).fit(shop, now=END)
    titles = set(items.loc[items["item_id"].isin(health), "title"])
    for u in shop.users["user_id"]:
        for r in rec.recommend(u, 10):
            assert not re.search("health|pharmacy", r.reason.text, re.I)
            assert not any(t in r.reason.text for t in titles)
            assert not any(e.item_id in health for e in r.reason.evidence)


def test_reasons_never_mention_protected_attributes(fitted, small_shop) -> None:
    words = {
        str(v).lower()
        for c in small_shop.audit.columns
        if c != "user_id"
        for v in small_shop.audit[c]
    }
    for u in small_shop.users["user_id"].iloc[::7]:
        for r in fitted.recommend(u, 10):
            tokens = set(re.findall(r"[a-z0-9+-]+", r.reason.text.lower()))
            assert not tokens & words, r.reason.text


@pytest.mark.slow
def test_movielens_facts_check_out(ml100k_path) -> None:
    from recsys.config import RecommenderConfig
    from recsys.data import load_movielens

    ds = load_movielens(ml100k_path)
    now = pd.Timestamp("1998-05-01", tz="UTC")
    rec = Recommender(RecommenderConfig(purpose="evaluation")).fit(ds, now=now)
    checker = FactChecker(minimize(ds, Policy.default(), "evaluation", now=now), Policy.default())
    false, facts = [], set()
    for u in ds.users["user_id"].iloc[::20]:
        for r in rec.recommend(u, 10):
            assert r.reason.text
            facts |= {e.fact for e in r.reason.evidence}
            false += checker.check(u, r)
    assert false == []
    assert {"average_rating", "chosen_together"} <= facts


def test_templates_speak_largest_total_first() -> None:
    """GroupOrder: per item, the templates with a positive attribution, by total positive
    attribution (left-to-right sums from 0.0), ties by their first positive feature."""
    from recsys.explain.reasons import GroupOrder

    groups = ["a", "b", "a", "c", "b", "d", "a"]
    features = [SimpleNamespace(group=g) for g in groups]
    order = GroupOrder.of(features)  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    phi = rng.normal(size=(300, len(groups)))
    phi[rng.random(phi.shape) < 0.3] = 0.0
    phi[:20] = np.round(phi[:20])  # ties of totals
    phi[20] = 0.0  # no template speaks
    for row, got in zip(phi, order.rank(phi), strict=True):
        want = []
        for g, members in enumerate(order.members):
            pos = [j for j in members if row[j] > 0]
            if pos:
                total = 0.0
                for j in members:
                    total += row[j] if row[j] > 0 else 0.0
                want.append((-total, pos[0], g))
        assert got == [g for *_, g in sorted(want)]
    assert order.rank(np.zeros((0, len(groups)))) == []


def test_a_memoized_sentence_is_the_rendered_one(monkeypatch) -> None:
    """The explainer's sentence memo returns what render returns (None included) and starts
    again when full."""
    from recsys.explain import reasons
    from recsys.explain.templates import render
    from recsys.types import Evidence, Fact

    facts = [
        Evidence(fact=Fact.CUSTOMERS, count=n, counted="purchase", others=o)
        for n in (1, 2, 1234)
        for o in (False, True)
    ] + [Evidence(fact=Fact.TRENDING, count=0, window_days=30, date="2024-01-01")]  # None
    monkeypatch.setattr(reasons, "TEXTS_MAX", 4)
    texts: dict = {}
    for _ in range(3):
        for ev in facts:
            assert reasons._render_memo(texts, ev, {}) == render(ev, {})
            assert len(texts) <= 4
    assert render(facts[-1], {}) is None

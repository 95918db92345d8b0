"""One exclusion rule and one relevance rule for every system of a run, and the paired tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.synthetic import ShopSpec, make_shop
from recsys.errors import ConfigError
from recsys.evaluation.baselines import Bestseller, MostPopular
from recsys.evaluation.compare import paired_comparisons, paired_test
from recsys.evaluation.protocol import Protocol, ProtocolConfig, apply_exclusions
from recsys.evaluation.run import BASELINE_NAME, EvaluationConfig, run_evaluation

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def events(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """(user, item, event, day) rows."""
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "day"])
    return df.assign(timestamp=T0 + pd.to_timedelta(df.pop("day"), unit="D"), value=1.0)


ITEMS = pd.DataFrame({"item_id": list("abcde"), "title": list("ABCDE"), "category": ["x"] * 5})
USERS = pd.DataFrame({"user_id": ["u1", "u2", "u3"]})


@pytest.mark.parametrize(
    ("rule", "hidden"), [("any", {"a", "b"}), ("purchased", {"a"}), ("none", set())]
)
def test_exclusion_rules(rule: str, hidden: set[str]) -> None:
    train = events([("u1", "a", "purchase", 0), ("u1", "b", "view", 0), ("u2", "c", "view", 0)])
    p = Protocol.resolve(ProtocolConfig(exclude=rule), train)
    ex = p.exclusions(train, ITEMS, ["u1", "u2", "u3"])
    assert ex["u1"] == hidden and ex["u3"] == frozenset()
    # the same rule binds a baseline that scores every item
    recs = MostPopular().fit(train, ITEMS, USERS).recommend_all(["u1"], 5, ex)
    assert not hidden & set(recs["u1"]) and (rule == "any" or "b" in recs["u1"])


def test_relevance_rules_and_auto() -> None:
    test = events([("u1", "a", "purchase", 5), ("u1", "b", "view", 5), ("u2", "c", "cart", 5)])
    p = Protocol.resolve(ProtocolConfig(), test)
    assert (p.relevant, p.exclude) == ("purchase", "purchased")
    assert p.truth(test) == {"u1": {"a"}}
    # an item the rule keeps out of every list cannot count as a success
    assert p.truth(test, {"u1": frozenset({"a"})}) == {}
    ratings = events([("u1", "a", "rating", 5), ("u1", "b", "rating", 5)]).assign(value=[5.0, 3.0])
    r = Protocol.resolve(ProtocolConfig(), ratings)
    assert (r.relevant, r.exclude) == ("rating", "any") and r.truth(ratings) == {"u1": {"a"}}
    with pytest.raises(ConfigError, match="no purchase events"):
        Protocol.resolve(ProtocolConfig(relevant="purchase"), ratings)


def test_bestseller_counts_recent_purchases_only() -> None:
    train = events(
        [("u1", "a", "purchase", 0), ("u2", "a", "purchase", 1), ("u3", "a", "purchase", 2),
         ("u1", "b", "purchase", 50), ("u2", "c", "view", 55), ("u3", "c", "view", 55),
         ("u1", "c", "view", 56), ("u2", "d", "purchase", 60), ("u3", "d", "purchase", 60)]
    )  # fmt: skip
    recs = Bestseller(days=30).fit(train, ITEMS, USERS).recommend_all(["x"], 5, {})
    assert recs["x"] == ["d", "b"]  # a sold most but long ago; c was only viewed
    assert MostPopular().fit(train, ITEMS, USERS).recommend_all(["x"], 1, {})["x"] == ["a"]


def test_lists_from_a_file_obey_the_rule() -> None:
    recs, removed = apply_exclusions({"u1": ["a", "b", "c", "d"]}, {"u1": frozenset({"b"})}, 2)
    assert recs == {"u1": ["a", "c"]} and removed == 1


def test_paired_test_by_hand() -> None:
    same = np.array([0.1, 0.5, 0.0, 1.0])
    assert paired_test(same, same, n_boot=50)["p_value"] == 1.0
    rng = np.random.default_rng(0)
    b = rng.random(200)
    a = b + 0.2 + rng.normal(0, 0.05, 200)
    t = paired_comparisons({"a": a, "b": b, "c": b.copy()}, "b", n_boot=100)
    assert t["a"]["verdict"] == "better" and t["a"]["p_adjusted"] < 0.001
    lo, hi = t["a"]["difference_ci95"]
    assert lo < 0.2 < hi and t["a"]["better_users"] == 200
    assert t["c"]["verdict"] == "no clear difference"


@pytest.fixture(scope="module")
def shop():
    return make_shop(ShopSpec(n_users=250, n_items=90, seed=21))


def test_every_system_faces_the_same_rule_and_the_shop_list_is_the_reference(shop) -> None:
    cfg = EvaluationConfig.model_validate(
        {"tune": False, "bootstrap": 50, "deletion_sample": 5, "examples": 2,
         "protocol": {"exclude": "purchased"},
         "systems": ["popular", "bestseller", "als", "recsys (no re-ranking)"]}
    )  # fmt: skip
    train_views = shop.interactions[shop.interactions["event"] == "view"]
    # the shop's own widget: the most viewed items, bought ones included (the rule drops them)
    top = train_views["item_id"].value_counts().index[:12].tolist()
    widget = {u: top for u in shop.users["user_id"]}
    metrics, _, recs = run_evaluation(shop, cfg, baseline_recs=widget)
    systems = metrics["systems"]
    assert set(systems) == {BASELINE_NAME, "popular", "bestseller", "als", "recsys (no re-ranking)"}
    assert all(m["excluded_recommended"] == 0 for m in systems.values())
    assert metrics["protocol"]["exclude"] == "purchased"
    assert sorted(metrics["protocol"]["same_rule_for_all"]) == sorted(systems)
    f = systems[BASELINE_NAME]["from_file"]
    assert (
        f["users_with_a_list"] == f["users_evaluated"]
        and f["entries_removed_by_exclusion_rule"] > 0
    )
    comp = metrics["comparison"]
    assert comp["reference"] == BASELINE_NAME
    assert set(comp["tests"]) == set(systems) - {BASELINE_NAME}
    assert all(
        t["verdict"] in ("better", "worse", "no clear difference") for t in comp["tests"].values()
    )
    assert len(metrics["examples"]) == 2 and all(
        len(e["recommendations"]) == 5 for e in metrics["examples"]
    )
    # "purchased" keeps viewed items recommendable, for the pipeline as for the baselines
    viewed = train_views.groupby("user_id")["item_id"].apply(set).to_dict()
    for name in ("popular", "recsys (no re-ranking)"):
        assert any(set(items) & viewed.get(u, set()) for u, items in recs[name].items()), name

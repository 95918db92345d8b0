from __future__ import annotations

import pandas as pd

from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.baselines import ImplicitFactory
from recsys.evaluation.minimization import Setting, apply, minimization_curve, summary_markdown


def test_settings_reduce_the_footprint() -> None:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    train = pd.DataFrame(
        {"user_id": ["u"] * 4, "item_id": list("abcd"), "event": "rating", "value": [1.0, 5.0, 4.0, 2.0],
         "timestamp": [t0 + pd.Timedelta(days=d) for d in (0, 100, 200, 300)]}
    )  # fmt: skip
    assert list(apply(train, Setting("newest", 2))["item_id"]) == ["c", "d"]
    assert list(apply(train, Setting("min_rating", 2))["item_id"]) == ["b", "c", "d"]
    assert list(apply(train, Setting("retention", 150))["item_id"]) == ["c", "d"]
    assert list(apply(train, Setting("min_rating+newest", 1, 3))["item_id"]) == ["c"]


def test_curve_names_the_smallest_good_setting() -> None:
    shop = make_shop(ShopSpec(n_users=300, n_items=80, seed=4))
    settings = [Setting("full", None), Setting("newest", 1000), Setting("newest", 2)]
    res = minimization_curve(
        shop, ImplicitFactory(algorithm="als", factors=16), settings, seeds=(0,)
    )
    t = res["table"].set_index("setting")
    assert t.loc["newest 1000 events", "cells_share"] == 1.0  # no user has that many: nothing cut
    assert t.loc["newest 2 events", "cells_share"] < 0.5
    ok = t[(t["ndcg_vs_full"] >= 1 - res["tolerance"]) & (t["strategy"] != "full")]
    assert res["best"]["setting"] == ok["cells"].idxmin()
    assert any(c.startswith("loss[activity=") for c in t.columns)
    assert "Smallest footprint" in summary_markdown(res, "als")

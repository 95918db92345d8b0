"""A shop's own export, one mapping file, every command: no other code between them.

Orders and page views (Unix-millisecond timestamps, the shop's own event names), products with
category paths ``Kitchen/Coffee/Grinders`` and stock quantities, customers with Y/N flags; the
shop's current widget output as ``--baseline-recs``. Every system of the evaluation faces the
same exclusion rule, and the report says which.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys.cli.main import main
from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.run import BASELINE_NAME

MAPPING = """
[[interactions]]
file = "export/orders.csv"
columns = { customer = "user_id", sku = "item_id", ordered_at = "timestamp", qty = "value" }
constants = { event = "purchase" }
timestamp_unit = "ms"

[[interactions]]
file = "export/pageviews.csv"
columns = { visitor = "user_id", product = "item_id", seen_ms = "timestamp", kind = "event" }
events = { pageview = "view", basket = "cart" }
timestamp_unit = "ms"

[items]
file = "export/products.csv"
columns = { sku = "item_id", name = "title", path = "category", maker = "brand", price_eur = "price", vendor = "seller_id" }
category_separator = "/"
in_stock_from_quantity = "stock_qty"

[users]
file = "export/customers.csv"
columns = { customer = "user_id", opt_in = "consent_personalization", newsletter = "consent_email" }
"""


def ms(ts: pd.Series) -> pd.Series:
    return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    d = root / "export"
    d.mkdir()
    ds = make_shop(ShopSpec(n_users=250, n_items=90, seed=21))
    inter = ds.interactions
    buys = inter[inter["event"] == "purchase"]
    pd.DataFrame({"customer": buys["user_id"], "sku": buys["item_id"],
                  "ordered_at": ms(buys["timestamp"]), "qty": buys["value"].fillna(1).astype(int)}
                 ).to_csv(d / "orders.csv", index=False)  # fmt: skip
    views = inter[inter["event"] != "purchase"]
    pd.DataFrame({"visitor": views["user_id"], "product": views["item_id"],
                  "seen_ms": ms(views["timestamp"]),
                  "kind": views["event"].map({"view": "pageview", "cart": "basket"})}
                 ).to_csv(d / "pageviews.csv", index=False)  # fmt: skip
    items = ds.items
    pd.DataFrame({"sku": items["item_id"], "name": items["title"],
                  "path": items["category"].str.replace(" > ", "/", regex=False),
                  "maker": items["brand"], "price_eur": items["price"], "vendor": items["seller_id"],
                  "stock_qty": items["in_stock"].map({True: 7, False: 0})}
                 ).to_csv(d / "products.csv", index=False)  # fmt: skip
    yn = {True: "Y", False: "N"}
    pd.DataFrame({"customer": ds.users["user_id"],
                  "opt_in": ds.users["consent_personalization"].map(yn),
                  "newsletter": ds.users["consent_email"].map(yn)}
                 ).to_csv(d / "customers.csv", index=False)  # fmt: skip
    # the shop's current widget: the same ten most viewed products for everyone
    top = views["item_id"].value_counts().index[:10]
    widget = pd.DataFrame(
        [(u, i, r + 1) for u in ds.users["user_id"] for r, i in enumerate(top)],
        columns=["user_id", "item_id", "rank"],
    )
    widget.to_csv(d / "widget.csv", index=False)
    (root / "shop-mapping.toml").write_text(MAPPING)
    (root / "eval.toml").write_text(
        "tune = false\nbootstrap = 50\ndeletion_sample = 5\n"
        'systems = ["popular", "bestseller", "als", "recsys (no re-ranking)"]\n'
        '[protocol]\nexclude = "purchased"\nrelevant = "purchase"\n'
    )
    return root


def test_every_command_from_one_mapping_file(
    export: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(export)  # the mapping names its files relative to where it lies
    m = ["--mapping", "shop-mapping.toml"]
    assert main(["data", "validate", *m]) == 0
    assert " 0 rejected" in capsys.readouterr().out

    model = str(tmp_path / "model")
    assert main(["train", *m, "--out", model]) == 0
    capsys.readouterr()
    user = pd.read_csv("export/orders.csv", dtype=str)["customer"].iloc[0]
    assert main(["recommend", "--model", model, "--user", user, "--json"]) == 0
    (recs,) = json.loads(capsys.readouterr().out)
    assert recs and all(r["reason"] for r in recs)

    report = tmp_path / "report"
    args = ["evaluate", *m, "--config", "eval.toml", "--baseline-recs", "export/widget.csv",
            "--out", str(report)]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    systems = metrics["systems"]
    assert set(systems) == {BASELINE_NAME, "popular", "bestseller", "als", "recsys (no re-ranking)"}
    # one rule for all: nobody recommends what the customer bought, the widget's lists included
    assert all(s["excluded_recommended"] == 0 for s in systems.values())
    assert sorted(metrics["protocol"]["same_rule_for_all"]) == sorted(systems)
    assert metrics["comparison"]["reference"] == BASELINE_NAME
    html = (report / "report.html").read_text()
    assert "items the customer bought in the training period are left out of every system" in html
    assert f"<strong>{BASELINE_NAME}</strong>" in html
    capsys.readouterr()

    assert main(["export", user, "--model", model, *m]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["data"]["interactions"] and before["data"]["users"]
    sources = {"export/orders.csv": "customer", "export/pageviews.csv": "visitor",
               "export/customers.csv": "customer"}  # fmt: skip
    held = {f: (pd.read_csv(f, dtype=str)[col] == user).sum() for f, col in sources.items()}
    assert all(held.values()), held  # the customer is in every mapped source file
    sizes = {f: len(pd.read_csv(f, dtype=str)) for f in sources}
    assert main(["forget", user, "--model", model, *m]) == 0
    erased = capsys.readouterr().out
    for f, col in sources.items():
        rest = pd.read_csv(f, dtype=str)
        assert not (rest[col] == user).any(), f"{f} still holds the erased customer"
        assert len(rest) == sizes[f] - held[f], f"{f}: only the customer's rows go"
        assert f"{f}: {held[f]:,} rows removed" in erased
    assert main(["export", user, "--model", model, *m]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["data"]["interactions"] == [] and after["data"]["users"] == []
    assert after["model"]["events"] == []

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from recsys.data import load_dir
from recsys.data.synthetic import END, ShopSpec, write_shop


def digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_byte_identical_output(tmp_path: Path, fmt: str) -> None:
    spec = ShopSpec(n_users=300, n_items=120, seed=11)
    write_shop(spec, tmp_path / "a", fmt=fmt)
    write_shop(spec, tmp_path / "b", fmt=fmt)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    write_shop(ShopSpec(n_users=300, n_items=120, seed=12), tmp_path / "c", fmt=fmt)
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_generated_data_passes_validation(tmp_path: Path) -> None:
    counts = write_shop(ShopSpec(n_users=500, n_items=200, seed=5), tmp_path, fmt="csv")
    ds = load_dir(tmp_path, strict=True, now=END.to_pydatetime())
    assert ds.report.n_rejected == 0
    assert len(ds.interactions) == counts["interactions"]
    assert ds.n_users == 500 and ds.n_items == 200


def test_shop_is_realistic(small_shop) -> None:
    inter, items, users = small_shop.interactions, small_shop.items, small_shop.users
    assert set(inter["event"]) == {"view", "cart", "purchase"}
    n = inter["event"].value_counts()
    assert n["view"] > n["cart"] > 0 and n["purchase"] > 0
    # some users withhold consent
    assert 0 < users["consent_personalization"].mean() < 1
    assert 0 < users["consent_email"].mean() < 1
    # power-law popularity: the top 10% of items get a large share of views
    views = inter[inter["event"] == "view"]["item_id"].value_counts()
    assert views.head(len(items) // 10).sum() / views.sum() > 0.3
    # consumables are bought again
    buys = inter[inter["event"] == "purchase"].groupby(["user_id", "item_id"]).size()
    assert (buys > 1).sum() > 0
    # no item is seen before it was listed
    listed = inter.merge(items[["item_id", "created_at"]], on="item_id")
    assert (listed["timestamp"] >= listed["created_at"]).all()


def test_small_sellers_are_under_exposed(small_shop) -> None:
    """The planted bias: small sellers' items get fewer views per item than large sellers'."""
    items = small_shop.items
    per_seller = items["seller_id"].value_counts()
    items = items.assign(small=items["seller_id"].map(per_seller) <= per_seller.median())
    views = small_shop.interactions.query("event == 'view'")["item_id"].value_counts()
    items["views"] = items["item_id"].map(views).fillna(0)
    per_item = items.groupby("small")["views"].mean()
    assert per_item[True] < 0.8 * per_item[False]


def test_scales_by_streaming(tmp_path: Path) -> None:
    """More users than one chunk: written in several row groups, still one valid table."""
    import pyarrow.parquet as pq

    from recsys.data import synthetic

    counts = write_shop(ShopSpec(n_users=synthetic.CHUNK_USERS + 50, n_items=50, seed=1), tmp_path)
    assert pq.ParquetFile(tmp_path / "users.parquet").num_row_groups == 2
    assert counts["users"] == synthetic.CHUNK_USERS + 50
    assert pd.read_parquet(tmp_path / "users.parquet")["user_id"].is_unique

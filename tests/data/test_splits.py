from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.splits import global_split, last_n_split, leave_one_out, temporal_split


@pytest.fixture
def inter() -> pd.DataFrame:
    t = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [("u", f"i{j}", t + pd.Timedelta(days=j)) for j in range(10)]
    rows += [("v", "x", t), ("w", "a", t), ("w", "b", t + pd.Timedelta(days=20))]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_temporal_split_takes_each_users_newest_share(inter) -> None:
    train, test = temporal_split(inter, 0.2)
    assert sorted(test.loc[test["user_id"] == "u", "item_id"]) == ["i8", "i9"]
    assert "v" not in set(test["user_id"])  # a single event stays in training
    assert list(test.loc[test["user_id"] == "w", "item_id"]) == ["b"]
    assert len(train) + len(test) == len(inter)
    with pytest.raises(ValueError):
        temporal_split(inter, 1.5)


def test_last_n_and_leave_one_out(inter) -> None:
    _, test = last_n_split(inter, 3)
    assert sorted(test.loc[test["user_id"] == "u", "item_id"]) == ["i7", "i8", "i9"]
    _, loo = leave_one_out(inter)
    assert sorted(loo["item_id"]) == ["b", "i9"]


def test_global_split_uses_one_cut_off(inter) -> None:
    cut = pd.Timestamp("2026-01-08", tz="UTC")
    train, test = global_split(inter, cut)
    assert (train["timestamp"] < cut).all() and (test["timestamp"] >= cut).all()
    assert set(test["item_id"]) == {"i7", "i8", "i9", "b"}

"""Shop-wide numbers about one customer read that customer's own events, and say what a pass
over every event would say."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from recsys.features.history import EVENT_CODE, Vocabulary
from recsys.features.shop import ShopStats


@pytest.fixture(scope="module")
def shop() -> ShopStats:
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": rng.choice([f"u{i}" for i in range(25)], size=n),
            "item_id": rng.choice([f"i{i}" for i in range(12)], size=n),
            "timestamp": pd.to_datetime(rng.integers(0, 40, size=n) * 86_400, unit="s"),
            "event": rng.choice(["purchase", "rating", "view"], size=n),
            "value": np.where(rng.random(n) < 0.1, np.nan, rng.integers(1, 6, size=n)),
        }
    )
    return ShopStats.from_frame(frame, Vocabulary(np.array([f"i{i}" for i in range(12)])))


def _scan_did_between(s: ShopStats, u: int, item: int, start: int, end: int) -> bool:
    m = (s.user == u) & (s.item == item) & s.is_signal
    return bool(((s.ts[m] >= start) & (s.ts[m] < end)).any())


def _scan_own_rating(s: ShopStats, u: int, item: int) -> tuple[float, int]:
    m = (s.user == u) & (s.item == item) & (s.event == EVENT_CODE["rating"])
    return float(np.nansum(s.value[m])), int(m.sum())


def test_one_customers_numbers_are_those_of_a_scan_of_every_event(shop: ShopStats) -> None:
    days = 86_400
    for erased in (None, "u3"):
        s = shop if erased is None else shop.without(erased)
        for u, key in enumerate(s.users.ids.tolist()):
            for item in range(12):
                assert s.own_rating(key, item) == _scan_own_rating(s, u, item)
                for start, end in ((0, 40 * days), (10 * days, 20 * days), (5 * days, 5 * days)):
                    want = _scan_did_between(s, u, item, start, end)
                    assert s.did_between(key, item, start, end) == want
    assert shop.own_rating("nobody", 0) == (0.0, 0)
    assert not shop.did_between("nobody", 0, 0, 40 * days)


def test_the_per_customer_index_is_rebuilt_where_it_is_used_not_shipped(shop: ShopStats) -> None:
    shop.did_between(shop.users.ids[0], 0, 0, 1)  # builds it
    shop.warm()
    assert "_user_rows" in shop.__dict__ and "_signal_by_time" in shop.__dict__
    copy = pickle.loads(pickle.dumps(shop))
    assert "_user_rows" not in copy.__dict__ and "_signal_by_time" not in copy.__dict__
    key = copy.users.ids[1]
    assert [copy.own_rating(key, i) for i in range(12)] == [
        shop.own_rating(key, i) for i in range(12)
    ]


def test_trending_counts_are_distinct_customers_of_a_scan_of_every_event(shop: ShopStats) -> None:
    """A day's counts read that day's window of the events sorted by time: the same numbers as
    a pass over every event, for every day and window (and after an erasure)."""
    day = 86_400
    for s in (shop, shop.without("u3")):
        for as_of in (0, 3 * day + 5, 17 * day, 40 * day, 55 * day):
            for days in (1, 7, 30):
                got, at = s.trending(as_of, days)
                start = as_of // day * day
                m = s.is_signal & (s.ts >= start - days * day) & (s.ts < start)
                want = [len(set(s.user[m & (s.item == i)].tolist())) for i in range(12)]
                assert at == start and got.tolist() == want


def test_a_readers_items_answer_as_did_does(shop: ShopStats) -> None:
    """A request asks once for the reader's items and then looks each trending item up there;
    it must count the reader out exactly where a look-up per item would."""
    from recsys.features.registry import _others

    days = 86_400
    for key in [*shop.users.ids.tolist(), "nobody"]:
        mine = frozenset(shop.items_of(key).tolist())
        assert mine == {i for i in range(12) if shop.did(key, np.array([i]))[0]}
        for item in range(12):
            for window in (None, (10 * days, 20 * days)):
                alone = _others(shop, key, item, 7, window)
                assert _others(shop, key, item, 7, window, mine) == alone

"""Per-user facts the features share (:class:`recsys.features.context.UserState`)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.features.context import _first_positions, _median


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1e6), st.just(float("nan"))), min_size=1, max_size=40))
def test_a_users_price_median_is_numpys_nanmedian(prices: list[float]) -> None:
    x = np.array(prices)
    got = _median(x)
    if np.isnan(x).all():
        assert np.isnan(got)
    else:
        assert got == np.nanmedian(x)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=600))
def test_first_positions_of_a_history_are_numpys(items: list[int]) -> None:
    x = np.array(items, dtype=np.int64)
    want = np.sort(np.unique(x, return_index=True)[1])
    assert _first_positions(x).tolist() == want.tolist()

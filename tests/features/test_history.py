"""The catalogue's product look-ups (items sharing a title are one product)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.features.history import Catalog

TITLES = ["Tea", "Tea", "Mug", "Kettle", "Kettle", "Kettle", "Spoon", "Cup", "Cup", "Jar"]


def _catalog() -> Catalog:
    return Catalog.from_frame(
        pd.DataFrame(
            {
                "item_id": [f"i{k}" for k in range(len(TITLES))],
                "title": TITLES,
                "category": ["Kitchen"] * len(TITLES),
            }
        )
    )


CATALOG = _catalog()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, len(TITLES) - 1), max_size=6), max_size=5))
def test_a_block_of_owners_gets_each_owners_same_products(per_owner: list[list[int]]) -> None:
    owner = np.repeat(np.arange(len(per_owner)), [len(x) for x in per_owner])
    items = np.array([i for x in per_owner for i in x], dtype=np.int64)
    who, got = CATALOG.same_product_pairs(owner, items)
    for p, mine in enumerate(per_owner):
        titles = {TITLES[i] for i in mine}  # the definition: every item with one of their titles
        want = {j for j, t in enumerate(TITLES) if t in titles}
        assert set(got[who == p].tolist()) == want
        assert set(CATALOG.same_product(np.array(mine, dtype=np.int64)).tolist()) == want
    assert set(who.tolist()) <= set(range(len(per_owner)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, len(TITLES) - 1), max_size=6), max_size=5))
def test_excluding_products_clears_what_the_pairs_name(per_owner: list[list[int]]) -> None:
    """The compiled pass that leaves seen products out of a block's candidates clears exactly
    the (owner, item) pairs :meth:`Catalog.same_product_pairs` names, and nothing else."""
    owner = np.repeat(np.arange(len(per_owner)), [len(x) for x in per_owner])
    items = np.array([i for x in per_owner for i in x], dtype=np.int64)
    mask = np.ones((len(per_owner), len(TITLES)), dtype=bool)
    CATALOG.exclude_products(mask, owner, items)
    want = np.ones_like(mask)
    who, got = CATALOG.same_product_pairs(owner, items)
    want[who, got] = False
    np.testing.assert_array_equal(mask, want)


def test_same_product_pairs_name_the_twins_of_a_title() -> None:
    who, got = CATALOG.same_product_pairs(np.array([0, 1]), np.array([0, 3]))
    assert set(got[who == 0].tolist()) == {0, 1}  # both teas
    assert set(got[who == 1].tolist()) == {3, 4, 5}  # all three kettles

"""Filter expressions: every operator on a hand-made catalogue, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.features.history import Catalog
from recsys.rules.filters import FilterError, parse

ITEMS = pd.DataFrame(
    {
        "item_id": ["A", "B", "C", "D", "E"],
        "title": ["a", "b", "c", "d", "e"],
        "category": ["Grocery > Coffee", "Grocery > Tea", "Books > Fiction", "Grocery", "Home"],
        "brand": ["X", "Y", "X", "", "Z"],
        "price": [10.0, 50.0, 51.0, np.nan, 5.0],
        "seller_id": ["S17", "S1", "S2", "S17", "S3"],
        "in_stock": [True, False, True, True, True],
        "origin": ["Kenya", "Peru", "", "Kenya", "Peru"],
        "weight": ["1.5", "2", "0.5", "3", "10"],
    }
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_frame(ITEMS)


def matches(catalog: Catalog, text: str) -> list[str]:
    mask = parse(text).bind(catalog).mask(None, [None], [0])[0]  # type: ignore[arg-type]
    return [str(i) for i in catalog.items.ids[mask]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in_stock", ["A", "C", "D", "E"]),
        ("not in_stock", ["B"]),
        ('category in ["Coffee", "Tea"]', ["A", "B"]),
        ('category == "Grocery"', ["A", "B", "D"]),
        ('category == "Grocery > Tea"', ["B"]),
        ('category != "Grocery"', ["C", "E"]),
        ('category not in ["Grocery", "Home"]', ["C"]),
        ("price <= 50", ["A", "B", "E"]),
        ("price < 50", ["A", "E"]),
        ("price >= 50", ["B", "C"]),
        ("price > 50", ["C"]),
        ("price == 10", ["A"]),
        ("price != 10", ["B", "C", "D", "E"]),
        ('seller_id != "S17"', ["B", "C", "E"]),
        ('brand == "X"', ["A", "C"]),
        ("brand == 'Y' or brand == 'Z'", ["B", "E"]),
        ('in_stock and (brand == "X" or price < 6)', ["A", "C", "E"]),
        ('not (in_stock and brand == "X")', ["B", "D", "E"]),
        ("in_stock == false", ["B"]),
        ('origin == "Kenya"', ["A", "D"]),
        ("weight > 1.9", ["B", "D", "E"]),
        ('item_id in ["A", "E"]', ["A", "E"]),
        ('not not in_stock and not brand == "X"', ["D", "E"]),
        ("in_stock or price <= 50 and not in_stock", ["A", "B", "C", "D", "E"]),
    ],
)
def test_every_operator(catalog: Catalog, text: str, expected: list[str]) -> None:
    assert matches(catalog, text) == expected


def test_extra_columns_become_typed_attributes(catalog: Catalog) -> None:
    assert catalog.attributes["weight"].dtype == float
    assert catalog.attributes["origin"].dtype == object


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("price <= abc", 10, "expected a number"),
        ("price <=", 9, "expected a number, got the end"),
        ("(in_stock", 10, "expected ')'"),
        ('category in ["a", ]', 19, "got ']'"),
        ('brand === "x"', 9, "unexpected character '='"),
        ("foo(3d)", 1, "unknown function 'foo'"),
        ("purchased_within(30)", 18, "expected a duration"),
        ('brand == "X" and', 17, "got the end"),
        ("in_stock brand", 10, "expected 'and', 'or' or the end"),
        ("", 1, "empty expression"),
        ('brand == "open', 10, "unterminated string"),
        ("and in_stock", 1, "expected a field name"),
        ('category in "Tea"', 13, "expected '['"),
        ("in_stock not brand", 14, "expected 'in' after 'not'"),
    ],
)
def test_malformed_expressions_name_token_and_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(FilterError) as err:
        parse(text)
    assert err.value.column == column
    assert fragment in str(err.value)
    assert str(err.value).startswith(f"filter {text!r} at column {column}: ")


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ('colour == "red"', 1, "unknown field 'colour'"),
        ('price <= "cheap"', 10, "expected a number"),
        ("brand == 3", 10, "expected a quoted string"),
        ('brand < "X"', 1, "use ==, != or in"),
        ("price", 1, "is not true/false"),
        ('in_stock == "yes"', 13, "expected true or false"),
        ('price in [1, "two"]', 14, "expected a number"),
    ],
)
def test_fields_and_values_are_checked_against_the_catalogue(
    catalog: Catalog, text: str, column: int, fragment: str
) -> None:
    with pytest.raises(FilterError) as err:
        parse(text).bind(catalog)
    assert err.value.column == column and fragment in str(err.value)


def test_config_and_campaign_reject_bad_expressions() -> None:
    from recsys.batch.campaign import Campaign
    from recsys.config import RecommenderConfig
    from recsys.errors import ConfigError

    with pytest.raises(ConfigError, match=r"at column 10: expected a number"):
        RecommenderConfig.from_toml('[rules]\ninclude = ["price <= abc"]')
    with pytest.raises(ValueError, match=r"at column 1: expected a field name"):
        Campaign.model_validate({"id": "w", "exclude": {"filters": ["or x"]}})
    cfg = RecommenderConfig.from_toml('[rules]\nexclude = ["not in_stock", "price > 40"]')
    assert RecommenderConfig.from_toml(cfg.to_toml()) == cfg
